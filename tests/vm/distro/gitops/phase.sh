#!/bin/sh
# The user's GitOps phases (issue 11), one step per completed boot; host B is this guest, host A the
# clone /srv/host-a, their remote the bare /srv/remote.git. B's units run as the timers would run them
# (`systemctl start`). Every fact goes to /var/lib/bgvm/gitops/facts (`NAME VALUE`, read back by the
# host) and to the console (`BGVM-GITOPS NAME VALUE`).
exec >/dev/console 2>&1
export HOME=/root
D=/var/lib/bgvm/gitops
B=/etc/config
A=/srv/host-a
R=/srv/remote.git
n=$(cat /var/lib/bgvm/boots)
mkdir -p $D

fact() { echo "$1 $2" >>$D/facts; echo "BGVM-GITOPS n=$n $1 $2"; }
head_of() { git -C "$1" rev-parse HEAD; }
remote_head() { git -C $R rev-parse dev; }

a_commit() { # MESSAGE FILE=LINE...: host A commits and pushes; prints the commit
    msg=$1
    shift
    for kv; do printf '%s\n' "${kv#*=}" >"$A/${kv%%=*}"; done
    git -C $A pull -q --rebase origin dev >&2
    git -C $A add -A >&2
    git -C $A commit -qm "$msg" >&2
    git -C $A push -q origin dev >&2
    head_of $A | tee -a $D/made
}

role() { # server|workstation: the role's preset plus the fixture's commands, as /etc/bootguard/gitops.env
    env=/etc/bgvm/gitops/gitops-$1.env
    args=$(sed -n 's/^BOOTGUARD_UPGRADE_ARGS=//p' "$env")
    {
        cat "$env"
        echo "BOOTGUARD_REPO=$B"
        echo "BOOTGUARD_UPGRADE_ARGS=$args --build-command /etc/bgvm/gitops/build.sh" \
            "--validate-command /etc/bgvm/gitops/validate.sh --switch-command /etc/bgvm/gitops/switch.sh" \
            "--trial-command /etc/bgvm/gitops/trial.sh"
    } >/etc/bootguard/gitops.env
    fact role "$1"
}

start() { # UNIT FACT: start a unit as its timer would; the fact is systemctl's exit status
    systemctl start "$1"
    fact "$2" $?
    journalctl -q -o cat -u "$1" -n 12 --no-pager | sed "s/^/BGVM-GITOPS-LOG $1: /"
}

builds() { wc -l <$D/builds 2>/dev/null || echo 0; }
running() { /usr/bin/bootguard --esp /boot/efi --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["running_commit"])'; }

case $n in
1) # golden: D (a change that does not build), then A (a change that breaks the boot)
    role server
    fact golden "$(head_of $B)"
    fact d1_commit "$(a_commit "does not build" build.txt=fail)"
    start bootguard-upgrade.service d1_rc
    fact d1_head "$(head_of $B)"
    fact d1_builds "$(builds)"
    fact d1_newest "$(cat $D/newest 2>/dev/null || echo none)"
    fact a_commit "$(a_commit "boots into a kernel panic" build.txt=ok boot.txt=panic)"
    start bootguard-upgrade.service a_rc
    fact a_head "$(head_of $B)"
    fact a_builds "$(builds)"
    fact a_newest "$(cat $D/newest)"
    ;;
4) # back on golden after two failed boots: the validator settled the commit
    fact golden_head "$(head_of $B)"
    fact golden_running "$(running)"
    fact golden_backups "$(git -C $B for-each-ref --format='%(refname:short)=%(objectname)' refs/bootguard/backup | tr '\n' ,)"
    fact retry_builds_before "$(builds)"
    start bootguard-upgrade.service retry_rc
    fact retry_builds_after "$(builds)"
    fact retry_head "$(head_of $B)"
    # B: a local edit becomes a commit in the user's format; the server preset does not push
    echo "edited on B" >$B/motd.txt
    remote_before=$(remote_head)
    start bootguard-commit.service b_rc
    fact b_head "$(head_of $B)"
    head_of $B >>$D/made
    fact b_subject "$(git -C $B log -1 --format=%s | tr ' ' _)"
    fact b_body "$(git -C $B log -1 --format=%b | tr ' \n' '_|')"
    fact b_remote_unchanged "$([ "$(remote_head)" = "$remote_before" ] && echo yes || echo no)"
    # the fix, conflicting with B's local commit (both edit motd.txt): server = prefer-remote
    fact fix_commit "$(a_commit "fix the panic" boot.txt=ok "motd.txt=motd from A")"
    start bootguard-upgrade.service fix_rc
    fact fix_head "$(head_of $B)"
    fact fix_motd "$(tr ' ' _ <$B/motd.txt)"
    fact fix_newest "$(cat $D/newest)"
    ;;
5) # the fix booted as a trial and was blessed (C); then a conflict under the workstation role
    fact c_b_head "$(head_of $B)"
    fact c_a_head "$(head_of $A)"
    fact c_remote "$(remote_head)"
    fact c_running "$(running)"
    role workstation
    fact w_a_commit "$(a_commit "A edits motd" "motd.txt=motd from A again")"
    echo "B's own motd" >$B/motd.txt
    start bootguard-commit.service w_commit_rc
    fact w_local "$(head_of $B)"
    head_of $B >>$D/made
    start bootguard-upgrade.service w_upgrade_rc
    start bootguard-commit.service w_push_rc
    fact w_b_head "$(head_of $B)"
    fact w_remote "$(remote_head)"
    fact w_motd "$(tr ' ' _ <$B/motd.txt)"
    ;;
6) # the workstation's resolution booted and was blessed; A pulls; every commit still reachable
    git -C $A pull -q --ff-only origin dev
    fact final_a "$(head_of $A)"
    fact final_b "$(head_of $B)"
    fact final_remote "$(remote_head)"
    fact final_running "$(running)"
    all=$( (git -C $A rev-list --all; git -C $B rev-list --all; git -C $R rev-list --all) | sort -u)
    lost=
    # shellcheck disable=SC2013 # one commit id per line
    for c in $(sort -u $D/made); do echo "$all" | grep -qx "$c" || lost="$lost$c,"; done
    fact lost "${lost:-none}"
    ;;
esac
fact phase_done "$n"
sync
