"""Detect systemd-bless-boot, a second blesser that would bless this boot on its own.

systemd-bless-boot-generator links systemd-bless-boot.service into basic.target.wants on every
counted EFI boot, and the service marks the entry good as soon as boot-complete.target is reached.
Two blessers disagree exactly when it matters (greenboot issue 108): bootguard must be the only
one. Masking the service is the fix: the generator's link then points at a masked unit.
"""

from __future__ import annotations

import os

import attrs

from bootguard.errors import CommandError
from bootguard.seams import proc

UNIT = "systemd-bless-boot.service"
GENERATOR = "systemd-bless-boot-generator"
GENERATOR_DIRS = ("/usr/lib/systemd/system-generators", "/lib/systemd/system-generators")
GENERATOR_MASK_DIRS = ("/etc/systemd/system-generators", "/run/systemd/system-generators")
# Current systemd writes the link to the early generator directory; older versions to the normal one.
GENERATED_LINKS = (
    "/run/systemd/generator.early/basic.target.wants/systemd-bless-boot.service",
    "/run/systemd/generator/basic.target.wants/systemd-bless-boot.service",
)
FIX = f"systemctl mask {UNIT}"


@attrs.frozen
class Conflict:
    state: str  # what `systemctl is-enabled` said
    reason: str

    @property
    def hint(self) -> str:
        return f"run `{FIX}` so that only bootguard decides whether a boot is good"


def _generator_active(root: str) -> bool:
    def at(path: str) -> str:
        return os.path.join(root, path.lstrip("/"))

    for d in GENERATOR_MASK_DIRS:
        mask = at(os.path.join(d, GENERATOR))
        if os.path.islink(mask) and os.readlink(mask) == "/dev/null":
            return False
    return any(os.path.exists(at(os.path.join(d, GENERATOR))) for d in GENERATOR_DIRS)


def detect(*, root: str = "/") -> Conflict | None:
    """A `Conflict` when systemd-bless-boot would run in this boot (or on the next counted one)."""
    try:
        done = proc.run(["systemctl", "is-enabled", UNIT], check=False, timeout=10)
    except CommandError:
        return None  # systemctl hung: nothing to say either way, the checks matter more
    state = done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""
    if state in ("masked", "masked-runtime") or done.returncode == 127:
        return None
    if state in ("enabled", "enabled-runtime", "linked", "linked-runtime", "alias", "generated"):
        return Conflict(state, f"{UNIT} is {state}")
    if any(os.path.lexists(os.path.join(root, link.lstrip("/"))) for link in GENERATED_LINKS):
        return Conflict(state or "static", f"{GENERATOR} pulled {UNIT} into this boot")
    if state and _generator_active(root):
        return Conflict(state, f"{GENERATOR} is installed and will pull {UNIT} into counted boots")
    return None
