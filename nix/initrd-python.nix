# The smallest Python that runs `bootguard initrd`, as one store path for boot.initrd.systemd.storePaths.
#
# make-initrd-ng copies store paths without their Nix closure (only ELF library dependencies are
# followed), and all of python3 with its standard library is far too big for an initrd that is
# stored once per generation on the ESP. So this tree holds exactly the files `bootguard initrd-files`
# measures (the interpreter runs the real early-boot step with -X importtime and every module it
# imports is kept), with bootguard's own modules next to the standard library:
#
#   $out/bin/python3                       copy of the interpreter (its RUNPATH brings libpython along)
#   $out/lib/pythonX.Y/…                   the imported standard-library modules, os.py as the landmark
#   $out/lib/pythonX.Y/bootguard/…         bootguard's early-boot modules
#
# `initrd-files` measures a dry run on an empty sandbox, which misses modules the real step imports
# lazily or through importlib; lazyModules adds those (with everything they import in turn).
#
# The interpreter finds its prefix from its own location (landmark lib/pythonX.Y/os.py), so
# `$out/bin/python3 -I -S -m bootguard …` needs nothing outside $out; the build proves it by running
# the real early-boot step on a sandbox host from the tree alone.
{
  lib,
  runCommand,
  jq,
  glibc,
  python,
  bootguard,
}:

let
  libDir = "lib/${python.libPrefix}";
  # Not in what `initrd-files` measures: imported inside functions the dry run never reaches, or
  # through importlib.import_module (the command module, the watchdog backend), which
  # -X importtime does not report. See the loop below.
  lazyModules = [
    "bootguard.cli.commands.initrd"
    "bootguard.earlyboot.step"
    "bootguard.seams.proc"
    "bootguard.seams._wd_native"
    "bootguard.seams._wd_python"
    "bootguard.seams.statestore"
    "bootguard.services.fallback"
    "encodings.utf_16_le"
    "json"
    "zlib"
    "fcntl"
    "array"
    "ctypes"
    "shutil"
    "subprocess"
    "pathlib"
  ];
in
runCommand "bootguard-initrd-python-${bootguard.version}"
  {
    # ldd: `bootguard initrd-files` lists the interpreter's libraries too (make-initrd-ng finds them
    # again by itself; the list is only used for the modules).
    nativeBuildInputs = [
      bootguard
      jq
      glibc.bin
    ];
  }
  ''
    set -euo pipefail
    lib=$out/${libDir}
    mkdir -p "$out/bin" "$lib/lib-dynload"

    bootguard --json initrd-files --python ${python.interpreter} > files.json

    # copy ROOT FILE: FILE must lie under ROOT; it keeps its path relative to ROOT under $lib.
    copy() {
      case "$2" in
        "$1"/*) install -D -m 0444 "$2" "$lib/''${2#"$1"/}" ;;
        *) echo "bootguard-initrd-python: $2 is not under $1" >&2; exit 1 ;;
      esac
    }
    jq -r '.stdlib[]' files.json | while IFS= read -r f; do copy ${python}/${libDir} "$f"; done
    jq -r '.bootguard[]' files.json | while IFS= read -r f; do copy ${bootguard}/${python.sitePackages} "$f"; done
    # os is a frozen module (not in the list) but its file is the landmark for the prefix search;
    # bootguard/__main__.py is run by `-m bootguard`, which -X importtime does not list.
    install -m 0444 ${python}/${libDir}/os.py "$lib/os.py"
    install -m 0444 ${bootguard}/${python.sitePackages}/bootguard/__main__.py "$lib/bootguard/__main__.py"
    install -m 0555 ${python.interpreter} "$out/bin/python3"

    # The measured list lacks what the real step imports lazily (lazyModules): the command module,
    # the mount of the ESP (seams.proc → subprocess), arming the watchdog (the pure-Python ioctl
    # backend: array, fcntl) and the state writes (json, zlib, ctypes for syncfs, shutil). Import
    # those with the tree's interpreter and copy each module it lacks from the full installation
    # until nothing is missing.
    lazy="${lib.concatStringsSep " " lazyModules}"
    for _ in $(seq 300); do
      missing=$("$out/bin/python3" -I -S -c '
    import importlib, re, sys
    for name in sys.argv[1:]:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            print(exc.name)
            break
        except ImportError as exc:  # `from package import submodule` with the submodule missing
            m = re.match(r"cannot import name .(\w+). from (?:partially initialized module )?.([\w.]+).", str(exc))
            if m is None:
                raise
            print(f"{m.group(2)}.{m.group(1)}")
            break
    ' $lazy)
      [ -n "$missing" ] || break
      origin=$(PYTHONPATH=${bootguard}/${python.sitePackages} ${python.interpreter} -S -c \
        'import importlib.util, sys; print(importlib.util.find_spec(sys.argv[1]).origin)' "$missing")
      case "$origin" in
        ${bootguard}/*) copy ${bootguard}/${python.sitePackages} "$origin" ;;
        *) copy ${python}/${libDir} "$origin" ;;
      esac
    done
    if [ -n "$missing" ]; then
      echo "bootguard-initrd-python: still missing $missing" >&2
      exit 1
    fi

    # Byte-compile now: the initrd would otherwise compile on every boot.
    ${python.interpreter} -m compileall -q --invalidation-mode unchecked-hash "$lib"

    # Proof that the tree is self-contained. The prefix must be $out; then the real step (not a dry
    # run) runs from $out alone on a sandbox host with a counted entry, loader variables in efivarfs
    # format, a state directory and a "watchdog" that refuses the ioctls, which takes it through
    # the state writes, the UTF-16 variables and the watchdog backend.
    prefix=$("$out/bin/python3" -I -S -c 'import sys; print(sys.prefix)')
    if [ "$prefix" != "$out" ]; then
      echo "bootguard-initrd-python: interpreter prefix is $prefix, not $out" >&2
      exit 1
    fi
    mkdir -p probe/esp/loader/entries probe/efivars probe/state probe/sysfs probe/pstore
    printf 'title probe\nlinux /vmlinuz\n' > probe/esp/loader/entries/probe+1-1.conf
    touch probe/watchdog
    ${python.interpreter} -c '
    import struct
    guid = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
    for name, value in (
        ("LoaderInfo", "systemd-boot 257"),
        ("LoaderEntrySelected", "probe.conf"),
        ("LoaderBootCountPath", "\\loader\\entries\\probe+1-1.conf"),
    ):
        with open(f"probe/efivars/{name}-{guid}", "wb") as f:
            f.write(struct.pack("<I", 6) + (value + "\0").encode("utf-16-le"))
    '
    "$out/bin/python3" -I -S -m bootguard --esp probe/esp --efivars probe/efivars \
      --state-dir probe/state initrd --watchdog-timeout 60 --watchdog-device probe/watchdog \
      --watchdog-sysfs probe/sysfs --pstore probe/pstore --spool-dir probe/spool | tee probe/report
    grep -q "counted attempt" probe/report
    test -s probe/state/events.jsonl
  ''
