#!/bin/sh
# /init of the harness's minimal guest (busybox ash). Runs on every boot of a scenario.
#
# 1. mounts proc/sys/dev/efivarfs, the ESP (/dev/vda1, rw) at /esp, the state disk (/dev/vdb, ext4) at /state;
# 2. prints one `BGVM-BOOT` marker line per boot (the host counts boots by it) with the loader variables,
#    then `BGVM-VAR` lines (every systemd-boot variable, hex), `BGVM-WDT` (i6300esb sysfs) and `BGVM-ESP`
#    (`BGVM-GRUBENV` with /esp/grub/grubenv's variables when the ESP has one: GRUB scenarios);
# 3. mounts the host's root read-only over virtio-9p at /host, with the guest's proc/sys/dev/efivarfs and the
#    ESP (/mnt/esp) and state disk (/mnt/state) inside, so `bg ARGS` runs the checkout's real
#    `python3 -m bootguard` with Debian's /usr/bin/python3;
# 4. runs the action for this boot: /state/control/boot-N.sh if it exists (N = boot number in this scenario),
#    else `bootguard.test=NAME` from the entry's options: a built-in below or /state/control/action-NAME.sh.
#
# Every line the host parses starts with `BGVM-`. Keep this file POSIX sh + busybox applets.

export PATH=/bin
LOADER_GUID=4a67b082-0a4c-41cf-b6c7-440b29bb8c4f
EFIVARS=/sys/firmware/efi/efivars
CHECKOUT=/nonexistent
MAX_BOOTS=20
WDT_HEARTBEAT=5
STATE_DIR=/mnt/state/bootguard
PYEXTRA=  # more PYTHONPATH for userland dependencies (attrs …) of the checkout, set by the host

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
grep -q bootguard.debug /proc/cmdline && set -x  # trace init on the serial line

say() { echo "BGVM-$*"; }

load_modules() { # ORDERFILE [PARAMS]
    while read -r ko; do
        insmod "/lib/modules/$ko" ${2:+"$2"} 2>/dev/null || say "MODULE-FAILED $ko"
    done <"$1"
}

wait_for() { # PATH: devices appear asynchronously after the driver binds
    i=0
    while [ ! -e "$1" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    [ -e "$1" ]
}

efistr() { # NAME → the UTF-16LE string value of a loader variable (ASCII only), or "-"
    f="$EFIVARS/$1-$LOADER_GUID"
    if [ -e "$f" ]; then tail -c +5 "$f" | tr -d '\000'; else printf '%s' -; fi
}

cmdarg() { # NAME → the value of NAME=VALUE on the kernel command line, or "-"
    value=-
    read -r cmdline </proc/cmdline
    # shellcheck disable=SC2086  # split the command line into its words
    for arg in $cmdline; do
        case $arg in "$1"=*) value=${arg#"$1"=} ;; esac
    done
    printf '%s' "$value"
}

efihex() { # FILE → hex bytes, attributes included
    od -An -v -tx1 "$1" | tr -d ' \n'
}

efiwrite() { # NAME HEX: write a loader variable (HEX = attribute word + data, built by the host)
    f="$EFIVARS/$1-$LOADER_GUID"
    # shellcheck disable=SC2059  # the format is the data on purpose: every byte as a \xHH escape
    printf "$(echo "$2" | sed 's/../\\x&/g')" >/tmp/efivar.bin
    # efivarfs files are created immutable; busybox has no chattr, the host's is reached via the chroot.
    [ -e "$f" ] && chroot /host /usr/bin/chattr -i "$f"
    if dd if=/tmp/efivar.bin of="$f" bs=4096 2>/dev/null; then
        say "EFIWRITE name=$1 ok"
    else
        say "EFIWRITE name=$1 failed"
    fi
}

efidelete() { # NAME
    f="$EFIVARS/$1-$LOADER_GUID"
    [ -e "$f" ] || return 0
    chroot /host /usr/bin/chattr -i "$f"
    if rm -f "$f"; then say "EFIDELETE name=$1 ok"; else say "EFIDELETE name=$1 failed"; fi
}

grub_editenv() { # ARGS: the host's grub-editenv on the ESP's grubenv (e.g. `grub_editenv set next_entry=X`)
    chroot /host /usr/bin/grub-editenv /mnt/esp/grub/grubenv "$@"
    rc=$?
    say "EDITENV rc=$rc args=$*"
    return $rc
}

bg_exec() { # ARGS: become the checkout's `python3 -m bootguard ARGS` in the host chroot (for `bg_exec … &`)
    exec chroot /host /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        PYTHONPATH="$CHECKOUT${PYEXTRA:+:$PYEXTRA}" PYTHONDONTWRITEBYTECODE=1 BOOTGUARD_STATE_DIR="$STATE_DIR" \
        /usr/bin/python3 -m bootguard --esp /mnt/esp "$@"
}

bg() { # ARGS: run the checkout's bootguard in the host chroot; prints BGVM-BG with its exit status
    (bg_exec "$@")
    rc=$?
    say "BG rc=$rc cmd=$*"
    return $rc
}

settle() { # flush both disks before anything that does not unmount them
    sync
}

finish() { # the scenario is over: unmount cleanly and power off (QEMU exits 0)
    say "END n=$BOOT_N reason=${1:-done}"
    umount /host/mnt/state /host/mnt/esp 2>/dev/null
    umount /state /esp 2>/dev/null
    sync
    poweroff -f
}

do_reboot() {
    say "REBOOT n=$BOOT_N"
    settle
    reboot -f
}

do_panic() {
    say "PANIC n=$BOOT_N"
    settle
    echo c >/proc/sysrq-trigger
}

do_hang() { # arm the watchdog and stop feeding it: the i6300esb resets the machine
    say "HANG n=$BOOT_N heartbeat=$WDT_HEARTBEAT"
    settle
    exec 3>/dev/watchdog
    while :; do sleep 3600; done
}

stall() { # stop here without touching the watchdog (someone else armed it, or nobody did)
    say "HANG n=$BOOT_N stalled"
    settle
    while :; do sleep 3600; done
}

mount_host() { # the host root over 9p, read-only, with the guest's own kernel file systems inside
    mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host || return 1
    mount -t proc proc /host/proc
    mount -t sysfs sysfs /host/sys
    mount -t efivarfs efivarfs /host$EFIVARS
    mount -t devtmpfs devtmpfs /host/dev
    # Fresh tmpfs on /run, /tmp and /mnt — but never over the checkout under test or its Python
    # paths (a CI clone may well live under /tmp): that directory then stays the host's, read-only.
    for d in run tmp mnt; do
        case "$CHECKOUT/:${PYEXTRA:-}/" in /$d/* | *:/$d/*) continue ;; esac
        mount -t tmpfs tmpfs /host/$d
    done
    mkdir -p /host/mnt/esp /host/mnt/state
    mount --bind /esp /host/mnt/esp
    mount --bind /state /host/mnt/state
    [ -d /sys/fs/pstore ] && mount -t pstore pstore /host/sys/fs/pstore 2>/dev/null
    return 0
}

report_boot() {
    read -r up _ </proc/uptime
    say "BOOT n=$BOOT_N selected=$(efistr LoaderEntrySelected) countpath=$(efistr LoaderBootCountPath)" \
        "entry=$(cmdarg bootguard.entry) info=$(efistr LoaderInfo | tr ' ' _) uptime=$up"
    for f in "$EFIVARS"/*-"$LOADER_GUID"; do
        [ -e "$f" ] || continue
        name=${f##*/}
        say "VAR n=$BOOT_N name=${name%-"$LOADER_GUID"} hex=$(efihex "$f")"
    done
    w=/sys/class/watchdog/watchdog0
    if [ -d $w ]; then
        say "WDT n=$BOOT_N identity=$(tr ' ' _ <$w/identity) bootstatus=$(cat $w/bootstatus)" \
            "state=$(cat $w/state) timeout=$(cat $w/timeout)"
    else
        say "WDT n=$BOOT_N none"
    fi
    [ -f /esp/loader/loader.conf ] && say "ESP n=$BOOT_N loader.conf=$(tr '\n' ';' </esp/loader/loader.conf)"
    names=
    for f in /esp/loader/entries/*; do [ -e "$f" ] && names="$names${f##*/} "; done
    say "ESP n=$BOOT_N entries=$names"
    g=/esp/grub/grubenv # GRUB's environment block: `key=value` lines, padded to 1024 bytes with '#'
    [ -f $g ] && say "GRUBENV n=$BOOT_N bytes=$(wc -c <$g) env=$(grep -v '^#' $g | tr '\n' ';')"
    # efi_pstore keeps the previous boots' panic logs (several dmesg-efi-* chunks per panic)
    set -- /sys/fs/pstore/*
    [ -e "$1" ] && say "PSTORE n=$BOOT_N files=$#"
}

run_action() {
    if [ -f "/state/control/boot-$BOOT_N.sh" ]; then
        say "ACTION n=$BOOT_N name=boot-$BOOT_N"
        # shellcheck source=/dev/null  # the scenario's script
        . "/state/control/boot-$BOOT_N.sh"
        return
    fi
    action=$(cmdarg bootguard.test)
    say "ACTION n=$BOOT_N name=$action"
    case $action in
        ok) finish ok ;;
        reboot) do_reboot ;;
        panic) do_panic ;;
        hang) do_hang ;;
        *)
            if [ -f "/state/control/action-$action.sh" ]; then
                # shellcheck source=/dev/null  # the scenario's script
                . "/state/control/action-$action.sh"
            else
                say "ERROR n=$BOOT_N unknown action $action"
            fi
            ;;
    esac
}

# ---------------------------------------------------------------------------------------------------

load_modules /lib/modules/early.order
mount -t efivarfs efivarfs $EFIVARS
mount -t pstore pstore /sys/fs/pstore 2>/dev/null
if ! { wait_for /dev/vda1 && mount -t vfat -o rw /dev/vda1 /esp; }; then say "ERROR no ESP"; fi
if ! { wait_for /dev/vdb && mount -t ext4 /dev/vdb /state; }; then say "ERROR no state disk"; fi
# shellcheck source=/dev/null  # written by the host: CHECKOUT, MAX_BOOTS, WDT_HEARTBEAT, STATE_DIR, PYEXTRA
[ -f /state/control/env ] && . /state/control/env
load_modules /lib/modules/late.order "heartbeat=$WDT_HEARTBEAT"
wait_for /dev/watchdog

BOOT_N=$(($(cat /state/vm/boots 2>/dev/null || echo 0) + 1))
mkdir -p /state/vm
echo $BOOT_N >/state/vm/boots
sync

report_boot
mount_host || say "ERROR n=$BOOT_N 9p mount of the host root failed"
if [ "$BOOT_N" -gt "$MAX_BOOTS" ]; then
    finish max-boots
fi
run_action
finish action-returned
