"""Where the harness keeps what it downloads and builds between runs.

`$BOOTGUARD_VM_CACHE` if set, else `tests/vm/cache/` in the checkout (git-ignored). Everything in it can
be deleted at any time: it is rebuilt (systemd-boot binaries are fetched again with apt) on the next run.
"""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[3]


def cache_root() -> Path:
    """The cache directory, created if missing."""
    env = os.environ.get("BOOTGUARD_VM_CACHE")
    root = Path(env) if env else CHECKOUT / "tests" / "vm" / "cache"
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def cache_dir(*parts: str) -> Path:
    """A sub-directory of the cache, created if missing."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
