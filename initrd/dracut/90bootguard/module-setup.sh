#!/bin/bash
# dracut module: bootguard's early-boot step. Files come from `bootguard initrd-files`, so the image gets
# exactly the interpreter, libraries and modules the step imports.
check() { require_binaries python3 || return 1; return 0; }
depends() { echo systemd; return 0; }
install() {
    local f
    while IFS= read -r f; do inst "$f"; done < <(bootguard initrd-files)
    inst_script "$moddir/../../bootguard-initrd" /usr/lib/bootguard/bootguard-initrd
    inst_simple "$moddir/../../bootguard-initrd.service" "$systemdsystemunitdir/bootguard-initrd.service"
    [ -r /etc/bootguard/initrd.env ] && inst_simple /etc/bootguard/initrd.env
    $SYSTEMCTL -q --root "$initdir" enable bootguard-initrd.service
}
