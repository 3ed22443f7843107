#!/bin/bash
# dracut module: bootguard's early-boot step. Files come from `bootguard initrd-files`, so the image gets
# exactly the interpreter, libraries and modules the step imports (bootguard's own modules go to
# /usr/lib/bootguard/python, which the entry point puts on sys.path).
# shellcheck disable=SC2154  # moddir and systemdsystemunitdir are dracut's
check() { require_binaries python3 || return 1; return 0; }
depends() { echo systemd; return 0; }
install() {
    local src dst
    while IFS=$'\t' read -r src dst; do inst_simple "$src" "$dst"; done < <(bootguard initrd-files --destinations)
    # Installed by the Debian package in /usr/lib/bootguard; from a checkout, next to initrd/dracut/.
    local from=/usr/lib/bootguard
    [ -r "$from/bootguard-initrd" ] || from="$moddir/../.."
    inst_script "$from/bootguard-initrd" /usr/lib/bootguard/bootguard-initrd
    inst_simple "$from/bootguard-initrd.service" "$systemdsystemunitdir/bootguard-initrd.service"
    inst_simple "$from/bootguard-initrd-failure.service" "$systemdsystemunitdir/bootguard-initrd-failure.service"
    [ -r /etc/bootguard/initrd.env ] && inst_simple /etc/bootguard/initrd.env
    $SYSTEMCTL -q --root "$initdir" enable bootguard-initrd.service bootguard-initrd-failure.service
}
