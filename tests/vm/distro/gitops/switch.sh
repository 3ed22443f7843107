#!/bin/sh
# The fixture's "switch --mode boot": install the built configuration as generation N — its /etc/bgvm/gen-N
# (checks.toml; a generation whose boot.txt says panic gets a unit that crashes the kernel early in boot)
# and a boot entry gen-N.conf like gen-1.conf with bgvm.gen=N — as `nixos-rebuild boot` would.
set -eu
out=/var/lib/bgvm/gitops/built/$BOOTGUARD_COMMIT
entries=/boot/efi/loader/entries
n=2
while [ -e "/etc/bgvm/gen-$n" ] || [ -e "$entries/gen-$n.conf" ]; do n=$((n + 1)); done
gen=/etc/bgvm/gen-$n
mkdir -p "$gen/units"
cp "$out/checks.toml" "$gen/checks.toml"
if grep -qx panic "$out/boot.txt"; then
    cat >"$gen/units/bgvm-break.service" <<'UNIT'
[Unit]
Description=bgvm: this generation breaks the boot (kernel panic)
DefaultDependencies=no
After=local-fs.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "BGVM-GITOPS panic now" >/dev/console; sleep 1; echo c >/proc/sysrq-trigger'
UNIT
    mkdir -p "$gen/units/sysinit.target.wants"
    ln -s ../bgvm-break.service "$gen/units/sysinit.target.wants/bgvm-break.service"
fi
sed -e "s/bgvm\.gen=1\b/bgvm.gen=$n/" -e "s/^title .*/title Generation $n/" \
    -e "s/^version .*/version Generation $n/" "$entries/gen-1.conf" >"$entries/gen-$n.conf"
echo "gen-$n.conf" >/var/lib/bgvm/gitops/newest
sync
