/*
 * bootguard._native_wd: watchdog ioctls, mlockall and a pinger thread outside the GIL.
 *
 * Every function returns 0 or a positive errno, so the Python side raises OSError with the
 * kernel's own code. The ioctl numbers come from the real <linux/watchdog.h> of the build host,
 * which is why this exists at all besides the pinger.
 *
 * The pinger pings only while the Python heartbeat (bg_pinger_beat) advances: a pinger that kept
 * pinging for a hung interpreter would hide exactly the failure the watchdog is there to catch.
 * After `stall_limit_ms` without a beat it stops pinging and the hardware resets the machine
 * `timeout` seconds later; if the beat comes back before that, pinging resumes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/watchdog.h>

#ifndef MCL_ONFAULT
#define MCL_ONFAULT 0 /* old libc: lock everything instead */
#endif

static int bg_wd_ioctl_int(int fd, unsigned long request, int *value)
{
    return ioctl(fd, request, value) == 0 ? 0 : errno;
}

static int bg_wd_get_support(int fd, struct watchdog_info *out)
{
    return ioctl(fd, WDIOC_GETSUPPORT, out) == 0 ? 0 : errno;
}

static int bg_wd_mlockall(int flags)
{
    return mlockall(flags) == 0 ? 0 : errno;
}

struct bg_pinger_stats {
    uint64_t pings;
    uint64_t errors;
    uint64_t skipped;       /* ticks with no ping because the heartbeat stalled */
    uint64_t max_gap_ns;    /* largest interval between two successful pings */
    uint64_t last_ping_ns;  /* CLOCK_MONOTONIC of the last successful ping, 0 if none */
    int last_errno;
    int stalled;            /* the heartbeat is currently stalled: no pings are sent */
};

struct bg_pinger {
    int fd;
    int use_write;
    uint64_t interval_ns;
    uint64_t stall_limit_ns;
    uint64_t beat;                  /* written by Python (atomic add), read by the thread */
    pthread_mutex_t lock;           /* guards stop, stats */
    pthread_cond_t wake;
    int stop;
    struct bg_pinger_stats stats;
    pthread_t thread;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct timespec to_timespec(uint64_t ns)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    return ts;
}

static int ping_once(struct bg_pinger *p)
{
    int dummy = 0;
    if (p->use_write) {
        /* Any write is a ping; a NUL byte never counts as the magic 'V'. */
        return write(p->fd, "\0", 1) == 1 ? 0 : errno;
    }
    return ioctl(p->fd, WDIOC_KEEPALIVE, &dummy) == 0 ? 0 : errno;
}

static void tick(struct bg_pinger *p, uint64_t *seen_beat, uint64_t *beat_changed_ns)
{
    uint64_t beat = __atomic_load_n(&p->beat, __ATOMIC_ACQUIRE);
    uint64_t now = now_ns();
    if (beat != *seen_beat) {
        *seen_beat = beat;
        *beat_changed_ns = now;
    }
    if (now - *beat_changed_ns > p->stall_limit_ns) {
        pthread_mutex_lock(&p->lock);
        p->stats.stalled = 1;
        p->stats.skipped++;
        pthread_mutex_unlock(&p->lock);
        return;
    }
    int err = ping_once(p);
    uint64_t done = now_ns();
    pthread_mutex_lock(&p->lock);
    p->stats.stalled = 0;
    if (err) {
        p->stats.errors++;
        p->stats.last_errno = err;
    } else {
        if (p->stats.last_ping_ns && done - p->stats.last_ping_ns > p->stats.max_gap_ns)
            p->stats.max_gap_ns = done - p->stats.last_ping_ns;
        p->stats.last_ping_ns = done;
        p->stats.pings++;
    }
    pthread_mutex_unlock(&p->lock);
}

static void *pinger_main(void *arg)
{
    struct bg_pinger *p = arg;
    uint64_t seen_beat = __atomic_load_n(&p->beat, __ATOMIC_ACQUIRE);
    uint64_t beat_changed_ns = now_ns();
    uint64_t next = beat_changed_ns;

    pthread_mutex_lock(&p->lock);
    while (!p->stop) {
        pthread_mutex_unlock(&p->lock);
        tick(p, &seen_beat, &beat_changed_ns);
        pthread_mutex_lock(&p->lock);
        next += p->interval_ns;
        uint64_t now = now_ns();
        if (next < now)
            next = now; /* fell behind (suspend, overload): no burst of catch-up pings */
        struct timespec deadline = to_timespec(next);
        while (!p->stop && pthread_cond_timedwait(&p->wake, &p->lock, &deadline) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static struct bg_pinger *bg_pinger_start(int fd, long interval_ms, long stall_limit_ms, int use_write,
                                         int *err)
{
    struct bg_pinger *p = calloc(1, sizeof *p);
    pthread_condattr_t attr;
    if (!p) {
        *err = ENOMEM;
        return NULL;
    }
    p->fd = fd;
    p->use_write = use_write;
    p->interval_ns = (uint64_t)interval_ms * 1000000u;
    p->stall_limit_ns = (uint64_t)stall_limit_ms * 1000000u;
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&p->wake, &attr);
    pthread_condattr_destroy(&attr);
    /* The thread inherits the caller's scheduling policy (SCHED_RR when the daemon got it). */
    *err = pthread_create(&p->thread, NULL, pinger_main, p);
    if (*err) {
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return NULL;
    }
    return p;
}

static void bg_pinger_beat(struct bg_pinger *p)
{
    __atomic_add_fetch(&p->beat, 1, __ATOMIC_RELEASE);
}

static void bg_pinger_stats(struct bg_pinger *p, struct bg_pinger_stats *out)
{
    pthread_mutex_lock(&p->lock);
    *out = p->stats;
    pthread_mutex_unlock(&p->lock);
}

static int bg_pinger_stop(struct bg_pinger *p)
{
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    int err = pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
    return err;
}
