#!/bin/sh
# bgvm-report.service: marker lines for the host (tests/vm/distro), then the end of the scenario.
# Written straight to the console: journald's console forwarding would prefix the lines.
exec >/dev/console 2>&1
n=$(cat /var/lib/bgvm/boots 2>/dev/null || echo 0)
say() { echo "BGVM-$*"; }
w=/sys/class/watchdog/watchdog0
holder=-
for fd in /proc/[0-9]*/fd/*; do
    case $(readlink "$fd" 2>/dev/null) in
        /dev/watchdog | /dev/watchdog0) p=${fd#/proc/}; holder=${p%%/*} ;;
    esac
done
complete_us=$(systemctl show -P ActiveEnterTimestampMonotonic boot-complete.target)
say "SYS n=$n boot_complete=$(systemctl is-active boot-complete.target) complete_us=$complete_us" \
    "validate=$(systemctl show -P Result bootguard-validate.service)" \
    "uptime=$(cut -d' ' -f1 /proc/uptime)"
say "SYS-WDT n=$n state=$(cat $w/state 2>/dev/null) timeout=$(cat $w/timeout 2>/dev/null) holder=$holder"
say "SYS-FAILED n=$n units=$(systemctl list-units --failed --no-legend --plain | cut -d' ' -f1 | tr '\n' ',')"
/usr/bin/bootguard status
action=poweroff
# shellcheck source=/dev/null # the scenario's settings (ON_COMPLETE), written by the host
[ -f /etc/bgvm/env ] && . /etc/bgvm/env && action=${ON_COMPLETE:-poweroff}
say "END n=$n reason=complete-$action"
sync
systemctl --no-block "$action"
