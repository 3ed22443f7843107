#!/usr/bin/env bash
# bootguard-stage-trial: stage the generation that `nixos-rebuild boot|switch` just installed as a trial.
#
# Run by systemd-boot's installer (boot.loader.systemd-boot.extraInstallCommands) after it has written
# an entry for every generation and loader.conf. The entry to try is the one the installer has just
# made the loader's default: the `preferred` line of $ESP/loader/loader.conf if there is one (only
# with nixpkgs' own boot counting), else its `default` line. For `nixos-rebuild boot|switch` that is
# the newest generation; it is found in `bootguard list --json` by file name or id, so both entry
# naming schemes (nixos-generation-N.conf, and nixos-<hash>.conf since nixpkgs PR 447173) work.
#
# Nothing is staged (exit 0, with the reason on stderr) when no golden generation is pinned, when the
# default is golden, is the entry booted now, or is already on trial, or when loader.conf names no
# single entry. Anything else that stops the trial exits non-zero, which makes nixos-rebuild report
# the bootloader installation as failed: a new default that boots uncounted, with no fallback, must
# not pass silently.
#
# Usage: bootguard-stage-trial --esp DIR [--xbootldr DIR] --tries N
# Needs `bootguard` and `jq` on PATH. BOOTGUARD_EFIVARS / BOOTGUARD_STATE_DIR are honoured by bootguard.
set -euo pipefail

esp=""
xbootldr=""
tries=""
while [ $# -gt 0 ]; do
  case "$1" in
    --esp) esp=$2; shift 2 ;;
    --xbootldr) xbootldr=$2; shift 2 ;;
    --tries) tries=$2; shift 2 ;;
    *) echo "bootguard-stage-trial: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$esp" ] || [ -z "$tries" ]; then
  echo "usage: bootguard-stage-trial --esp DIR [--xbootldr DIR] --tries N" >&2
  exit 2
fi

say() { echo "bootguard: $*" >&2; }
bg() {
  if [ -n "$xbootldr" ]; then
    bootguard --esp "$esp" --xbootldr "$xbootldr" "$@"
  else
    bootguard --esp "$esp" "$@"
  fi
}

status=$(bg --json status)
golden=$(jq -r '.golden.filename // empty' <<<"$status")
if [ -z "$golden" ]; then
  say "no golden generation is pinned, so no trial is staged (run 'bootguard pin-golden' on a good boot)"
  exit 0
fi

conf="$esp/loader/loader.conf"
if [ ! -r "$conf" ]; then
  say "$conf is missing: cannot tell which entry the installer made the default"
  exit 1
fi
default=$(awk '$1 == "preferred" { p = $2 } $1 == "default" { d = $2 } END { print (p != "" ? p : d) }' "$conf")
case "$default" in
  "" | *"*"* | *"?"* | *"["*)
    say "$conf names no single default entry ('$default'), so no trial is staged"
    exit 0
    ;;
esac

entry=$(bg --json list | jq -c --arg d "$default" \
  'map(select(.filename == $d or .filename == ($d + ".conf") or .id == $d)) | first // empty')
if [ -z "$entry" ]; then
  say "the default entry '$default' named by $conf is not among the boot entries (see 'bootguard list')"
  exit 1
fi
filename=$(jq -r '.filename' <<<"$entry")

if [ "$filename" = "$golden" ]; then
  say "the default entry $filename is golden: nothing new to try"
  exit 0
fi
if jq -e '.booted' <<<"$entry" >/dev/null; then
  say "the default entry $filename is the entry booted now: nothing new to try"
  exit 0
fi
if [ "$(jq -r '.trial.filename // empty' <<<"$status")" = "$filename" ]; then
  say "$filename is already on trial; its tries are left as they are"
  exit 0
fi

bg trial "$filename" --tries "$tries"
