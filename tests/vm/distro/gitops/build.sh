#!/bin/sh
# The test fixture's "build" (not a product feature): refuse a configuration whose build.txt says fail,
# else keep what the generation needs under /var/lib/bgvm/gitops/built/<commit>.
set -eu
if grep -qx fail build.txt; then
    echo "build failed: build.txt says fail" >&2
    exit 1
fi
out=/var/lib/bgvm/gitops/built/$BOOTGUARD_COMMIT
mkdir -p "$out"
cp checks.toml boot.txt "$out/"
echo "$BOOTGUARD_COMMIT" >>/var/lib/bgvm/gitops/builds
