#!/bin/sh
# /init of the distribution guest's initramfs (busybox ash): the part of a Debian initramfs that matters
# to bootguard, and nothing else. Runs on every boot of a scenario.
#
# 1. loads the modules, mounts proc/sys/dev/run, efivarfs and pstore; mounts the root disk (/dev/vdb,
#    ext4, read-write) at /sysroot and the ESP (/dev/vda1) at /sysroot/boot/efi;
# 2. prints the harness's marker lines (`BGVM-BOOT`, `BGVM-VAR`, `BGVM-WDT`, `BGVM-ESP`: the host parses
#    them with tests/vm/harness/serial.py) and counts the boot in /sysroot/var/lib/bgvm/boots;
# 3. installs the booted generation's configuration (`bgvm.gen=N` on the kernel command line): its
#    checks.toml becomes /etc/bootguard/checks.toml, its units go to /run/systemd/system and its
#    system.conf to /run/systemd/system.conf.d — as if each generation had its own /etc, like NixOS;
# 4. runs /sysroot/etc/bgvm/boot-N.sh if the scenario gave one for boot N, else the default boot:
#    `bootguard initrd` (chrooted into the root: Debian's python3 and the installed bootguard, state in
#    /var/lib/bootguard on the root disk) and switch_root into systemd.
#
# Keep this file POSIX sh + busybox applets. `bootguard.debug` on the command line traces it.

export PATH=/bin
LOADER_GUID=4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
EFIVARS=/sys/firmware/efi/efivars
ROOT=/sysroot
MAX_BOOTS=8
WDT_HEARTBEAT=30
WDT_TIMEOUT=

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
grep -q bootguard.debug /proc/cmdline && set -x

say() { echo "BGVM-$*"; }

load_modules() { # ORDERFILE [PARAMS]
    while read -r ko; do
        # shellcheck disable=SC2086 # $2 is a list of module parameters
        insmod "/lib/modules/$ko" $2 2>/dev/null || say "MODULE-FAILED $ko"
    done <"$1"
}

wait_for() { # PATH
    i=0
    while [ ! -e "$1" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    [ -e "$1" ]
}

cmdline_arg() { # NAME → value of NAME=value on the kernel command line, or empty
    # shellcheck disable=SC2013 # the command line is one line of words
    for arg in $(cat /proc/cmdline); do
        case $arg in "$1"=*) echo "${arg#*=}" ;; esac
    done
}

efistr() {
    f="$EFIVARS/$1-$LOADER_GUID"
    if [ -e "$f" ]; then tail -c +5 "$f" | tr -d '\000'; else printf -- -; fi
}

report_boot() {
    read -r up _ </proc/uptime
    say "BOOT n=$BOOT_N selected=$(efistr LoaderEntrySelected) countpath=$(efistr LoaderBootCountPath)" \
        "info=$(efistr LoaderInfo | tr ' ' _) uptime=$up"
    for f in "$EFIVARS"/*-"$LOADER_GUID"; do
        [ -e "$f" ] || continue
        name=${f##*/}
        say "VAR n=$BOOT_N name=${name%-"$LOADER_GUID"} hex=$(od -An -v -tx1 "$f" | tr -d ' \n')"
    done
    w=/sys/class/watchdog/watchdog0
    if [ -d $w ]; then
        say "WDT n=$BOOT_N identity=$(tr ' ' _ <$w/identity) bootstatus=$(cat $w/bootstatus)" \
            "state=$(cat $w/state) timeout=$(cat $w/timeout)"
    else
        say "WDT n=$BOOT_N none"
    fi
    say "ESP n=$BOOT_N loader.conf=$(tr '\n' ';' <$ROOT/boot/efi/loader/loader.conf)"
    # shellcheck disable=SC2012 # entry file names are plain ASCII
    say "ESP n=$BOOT_N entries=$(ls $ROOT/boot/efi/loader/entries | tr '\n' ' ')"
}

install_generation() { # GEN: this generation's checks and units (a fresh /run each boot)
    gen=$ROOT/etc/bgvm/gen-$1
    say "GEN n=$BOOT_N gen=$1"
    if [ -f "$gen/checks.toml" ]; then
        cp "$gen/checks.toml" $ROOT/etc/bootguard/checks.toml
    else
        rm -f $ROOT/etc/bootguard/checks.toml
    fi
    if [ -f "$gen/system.conf" ]; then # PID 1 reads /run/systemd/system.conf.d too; 90- sorts after /etc's 50-
        mkdir -p /run/systemd/system.conf.d
        cp "$gen/system.conf" /run/systemd/system.conf.d/90-bgvm-generation.conf
    fi
    if [ -d "$gen/units" ]; then
        mkdir -p /run/systemd/system
        cp -a "$gen/units/." /run/systemd/system/
    fi
}

chroot_mounts() { # what bootguard needs inside the root: kernel file systems, /run
    for d in proc sys dev run; do mount --rbind /$d $ROOT/$d; done
}

chroot_umounts() {
    for d in run dev sys proc; do umount -l $ROOT/$d; done
}

bg() { # ARGS: the installed /usr/bin/bootguard in the root, with Debian's python3; BGVM-BG with its status
    chroot $ROOT /usr/bin/env -i PATH=/usr/sbin:/usr/bin HOME=/root LANG=C.UTF-8 \
        /usr/bin/bootguard --esp /boot/efi "$@"
    rc=$?
    say "BG rc=$rc cmd=$*"
    return $rc
}

initrd_step() { # [--watchdog-timeout S]: bootguard's early-boot step
    bg initrd "$@"
}

settle() { sync; }

finish() { # the scenario is over in the initrd: unmount and power off (QEMU exits 0)
    say "END n=$BOOT_N reason=${1:-done}"
    chroot_umounts
    umount $ROOT/boot/efi
    umount $ROOT
    sync
    poweroff -f
}

do_reboot() {
    say "REBOOT n=$BOOT_N"
    chroot_umounts
    umount $ROOT/boot/efi
    mount -o remount,ro $ROOT
    sync
    reboot -f
}

stall() { # SECONDS: stop here without touching the watchdog (the gap before PID 1 takes over)
    say "HANG n=$BOOT_N stalled=$1"
    settle
    sleep "$1"
    say "ERROR n=$BOOT_N still alive after a stall of $1 s"
    finish stall-survived
}

switch_to_systemd() {
    w=/sys/class/watchdog/watchdog0
    say "HANDOFF n=$BOOT_N state=$(cat $w/state) timeout=$(cat $w/timeout) uptime=$(cut -d' ' -f1 /proc/uptime)"
    chroot_umounts
    sync
    for d in dev run sys proc; do mount --move /$d $ROOT/$d; done
    exec switch_root $ROOT /sbin/init
}

# ---------------------------------------------------------------------------------------------------

load_modules /lib/modules/early.order
mount -t efivarfs efivarfs $EFIVARS
mount -t pstore pstore /sys/fs/pstore 2>/dev/null
if ! { wait_for /dev/vdb && mount -t ext4 -o rw /dev/vdb $ROOT; }; then say "ERROR no root disk"; fi
if ! { wait_for /dev/vda1 && mount -t vfat -o rw /dev/vda1 $ROOT/boot/efi; }; then say "ERROR no ESP"; fi
# shellcheck source=/dev/null # the scenario's settings, written into the root image by the host
[ -f $ROOT/etc/bgvm/env ] && . $ROOT/etc/bgvm/env
load_modules /lib/modules/late.order "heartbeat=$WDT_HEARTBEAT"
wait_for /dev/watchdog0

mkdir -p $ROOT/var/lib/bgvm
BOOT_N=$(($(cat $ROOT/var/lib/bgvm/boots 2>/dev/null || echo 0) + 1))
echo $BOOT_N >$ROOT/var/lib/bgvm/boots
sync

report_boot
install_generation "$(cmdline_arg bgvm.gen)"
chroot_mounts
if [ "$BOOT_N" -gt "$MAX_BOOTS" ]; then
    finish max-boots
fi
if [ -f "$ROOT/etc/bgvm/boot-$BOOT_N.sh" ]; then
    say "ACTION n=$BOOT_N name=boot-$BOOT_N"
    # shellcheck source=/dev/null # the scenario's snippet for this boot
    . "$ROOT/etc/bgvm/boot-$BOOT_N.sh"
else
    say "ACTION n=$BOOT_N name=systemd"
    initrd_step ${WDT_TIMEOUT:+--watchdog-timeout "$WDT_TIMEOUT"}
fi
switch_to_systemd
