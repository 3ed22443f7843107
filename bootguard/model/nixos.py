"""NixOS generations ↔ boot entries.

Before NixOS 26.05 entries are named `nixos[-PROFILE]-generation-N[-specialisation-NAME].conf`; since
26.05 (nixpkgs PR 447173) they are `nixos-<sha256>[+N].conf` and the generation number appears only in
the `version Generation N …` line. Both are understood here. Pure functions, stdlib only.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.model.entry import BootEntry

PROFILES_DIR = "nix/var/nix/profiles"
GCROOT = "nix/var/nix/gcroots/bootguard-golden"


def _generation_from_name(stem: str) -> int | None:
    if not stem.startswith("nixos"):
        return None
    marker = "-generation-"
    at = stem.find(marker)
    if at < 0:
        return None
    digits = stem[at + len(marker) :].split("-", 1)[0]
    return int(digits) if digits.isdigit() else None


def _generation_from_version(version: str | None) -> int | None:
    words = (version or "").split()
    if len(words) >= 2 and words[0] == "Generation" and words[1].isdigit():
        return int(words[1])
    return None


def generation_of(entry: BootEntry) -> int | None:
    """The NixOS system generation an entry boots, or None for non-NixOS entries and specialisations."""
    stem = entry.name.prefix
    if "-specialisation-" in stem:
        return None
    return _generation_from_name(stem) or _generation_from_version(entry.version)


def entries_for_generation(
    entries: tuple[BootEntry, ...] | list[BootEntry], generation: int
) -> list[BootEntry]:
    return [e for e in entries if generation_of(e) == generation]


def system_link(generation: int) -> str:
    """The profile link of a generation, relative to the root."""
    return f"{PROFILES_DIR}/system-{generation}-link"
