#!/usr/bin/env python3
"""Parse a checks.toml with bootguard's own loader (nix/module.nix runs this when it builds the file).

A typo in a health check must fail `nixos-rebuild`, not the next boot: the loader rejects unknown
keys, unknown kinds, inline secrets, cycles in `after` and the like.

Usage: check-config FILE
"""

from __future__ import annotations

import sys

from bootguard.errors import BootguardError, ExitCode
from bootguard.validator import config


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check-config FILE", file=sys.stderr)
        return int(ExitCode.USAGE)
    try:
        loaded = config.load(argv[0])
    except BootguardError as exc:
        print(f"services.bootguard: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"services.bootguard: hint: {exc.hint}", file=sys.stderr)
        return int(exc.exit_code)
    print(f"{argv[0]}: {len(loaded.checks)} checks, {len(loaded.notifiers)} notifiers")
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
