#!/bin/sh
# `make deb`: build dist/bootguard_<version>_<arch>.deb with Debian's tooling (debian/), for Debian's
# /usr/bin/python3. Installs the build dependencies with apt when they are missing (needs root then).
# The build runs in a copy of the sources under build/deb/ so the checkout stays clean.
# Usage: scripts/build-deb.sh [OUTDIR]   (default dist/); prints the path of the .deb.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
# Debian's python3, not a pyenv/virtualenv one: the extension and the package are for /usr/bin/python3.
PATH=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
unset PYTHONPATH VIRTUAL_ENV PYENV_VERSION

deps="build-essential debhelper dh-python pybuild-plugin-pyproject python3-all-dev python3-cffi python3-setuptools python3-wheel help2man lintian fakeroot"
missing=""
for p in $deps; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "make deb: installing build dependencies:$missing"
    apt-get update -q
    # shellcheck disable=SC2086 # a list of package names
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

version=$(dpkg-parsechangelog -l debian/changelog -SVersion)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
out=${1:-$top/dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)
mkdir -p "$top/build"
work=$(mktemp -d "$top/build/deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
src=$work/bootguard-$version
mkdir -p "$src"
# What the package is built from; tests/, bench/ and caches stay out.
cp -a bootguard c_ext debian docs initrd monitoring systemd pyproject.toml setup.py README.md "$src/"
find "$src" \( -name __pycache__ -o -name '*.so' -o -name '*.pyc' \) -prune -exec rm -rf {} +
rm -f "$src/bootguard/_native_wd.c"
(cd "$src" && dpkg-buildpackage -b -uc -us --no-sign >"$work/build.log" 2>&1) || {
    tail -40 "$work/build.log" >&2
    cp "$work/build.log" "$out/build.log"
    echo "make deb: dpkg-buildpackage failed; full log: $out/build.log" >&2
    exit 1
}
deb=bootguard_${version}_${arch}.deb
mv "$work/$deb" "$out/$deb"
echo "$out/$deb"
