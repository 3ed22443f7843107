#!/usr/bin/env bash
# Install everything bootguard's demo and tests need on a fresh Debian machine (run as root).
# Idempotent: a second run only checks. Used by `make demo`, `make test` and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  qemu-system-x86 qemu-utils ovmf systemd-boot-efi linux-image-amd64 busybox-static
  mtools dosfstools cpio kmod fdisk e2fsprogs git gcc libc6-dev python3 nix-bin shellcheck mmdebstrap
  grub-efi-amd64-bin grub2-common
  openssh-client  # ssh-keygen: SSH-signed commits in the GitOps and fleet (signed verdicts) tests
  # monitoring tests: promtool, a real Prometheus and node exporter (tests/integration/test_prometheus*.py)
  prometheus prometheus-node-exporter
  # make deb, its package test and the distribution guest's dpkg -i (debian/, tests/integration/test_deb_package.py)
  build-essential debhelper dh-python pybuild-plugin-pyproject python3-all-dev python3-cffi python3-setuptools python3-wheel help2man lintian fakeroot
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import bootguard, pytest, hypothesis, mypy, ruff, detect_secrets' 2>/dev/null \
   || [ "$("$PY" -c 'import bootguard,os;print(os.path.dirname(os.path.dirname(bootguard.__file__)))')" != "$PWD" ]; then
  echo "bootstrap: installing bootguard (editable, with its C extension) and test tools"
  "$PY" -m pip install -q --disable-pip-version-check -e ".[test]"
fi
# The editable install builds the optional extension in place when a compiler exists.
"$PY" c_ext/watchdog_build.py >/dev/null 2>&1 || echo "bootstrap: C extension not built; pure-Python backend"
