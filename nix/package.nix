# bootguard as a Python application with its optional cffi watchdog extension.
#
# The extension (c_ext/watchdog_build.py, `cffi_modules=` in setup.py) is compiled against the
# <linux/watchdog.h> of the target; setup.py tolerates a failed compile, so pythonImportsCheck names
# `bootguard._native_wd` explicitly: on NixOS the extension must really be there.
{
  lib,
  python3Packages,
}:

let
  root = ../.;
  # Only what the build needs: no tests, no build leftovers (a stray in-tree _native_wd*.so or
  # __pycache__ would otherwise end up in the wheel).
  leftovers = lib.fileset.fileFilter (f: f.hasExt "so" || f.hasExt "pyc") (root + "/bootguard");
  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      (root + "/pyproject.toml")
      (root + "/setup.py")
      (root + "/README.md")
      (root + "/c_ext")
      (root + "/systemd")
      (root + "/initrd")
      (lib.fileset.difference (root + "/bootguard") leftovers)
    ];
  };
in
python3Packages.buildPythonApplication {
  pname = "bootguard";
  version = "0.1.0";
  pyproject = true;
  inherit src;

  build-system = with python3Packages; [
    setuptools
    wheel
    cffi
  ];

  dependencies = with python3Packages; [
    attrs
    pyudev
    sdnotify
    cffi
  ];

  # The units refer to /usr/bin/bootguard; NixOS picks them up through systemd.packages.
  # libexec/bootguard/check-config lets the NixOS module parse checks.toml at build time.
  postInstall = ''
    for unit in systemd/*.service systemd/*.timer; do
      name=$(basename "$unit")
      install -Dm0644 "$unit" "$out/lib/systemd/system/$name"
      substituteInPlace "$out/lib/systemd/system/$name" \
        --replace-fail /usr/bin/bootguard "$out/bin/bootguard"
    done
    install -Dm0755 ${./check-config.py} "$out/libexec/bootguard/check-config"
  '';

  # Give the helper the same interpreter and module path as bin/bootguard.
  postFixup = ''
    wrapPythonProgramsIn "$out/libexec/bootguard" "$out $pythonPath"
  '';

  # The interpreter bootguard runs on; the initrd gets a minimal copy of it (initrd-python.nix).
  passthru.python = python3Packages.python;

  pythonImportsCheck = [
    "bootguard"
    "bootguard._native_wd"
  ];

  # The test suite needs real ESP trees, git and QEMU; it runs in the repository (`make test`).
  doCheck = false;

  meta = {
    description = "Keep self-updating systemd-boot hosts from ever staying bricked";
    license = lib.licenses.mit;
    platforms = lib.platforms.linux;
    mainProgram = "bootguard";
  };
}
