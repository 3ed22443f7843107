"""Entry layouts for the trial/fallback mechanism, shared by the loader tests and `make demo`-style runs.

The mechanism under test (issue 5): bootguard keeps NixOS's own entries untouched and adds two entries of
its own, sorted before everything else by `sort-key`:

- `bootguard-trial+N.conf` — the trial's content, counted, `sort-key bootguard-0`;
- `bootguard-golden.conf`  — golden's content, uncounted, `sort-key bootguard-1`;

and points the loader's default at the glob `bootguard-*` (LoaderEntryDefault, or `default` in loader.conf).
While the trial has tries left it is the first match; once it is bad (`+0-N`) systemd-boot sorts it last,
so the first match is the golden copy — never an intermediate generation, never the trial's original.
"""

from __future__ import annotations

from tests.vm.harness.disk import BlsEntry
from tests.vm.harness.scenario import entry, set_loader_var_then_reboot

GLOB = "bootguard-*"


def nixos_generation(n: int, action: str) -> BlsEntry:
    """An entry as NixOS (before 26.05) writes it: uncounted, `sort-key nixos`, `version Generation N`."""
    return entry(
        f"nixos-generation-{n}.conf",
        action,
        title=f"NixOS (Generation {n})",
        sort_key="nixos",
        version=f"Generation {n} NixOS 25.05",
    )


def bootguard_golden(action: str = "ok") -> BlsEntry:
    title = "bootguard golden (Generation 1)"
    return entry("bootguard-golden.conf", action, title=title, sort_key="bootguard-1", version="1")


def bootguard_trial(action: str, tries: int = 2) -> BlsEntry:
    title = "bootguard trial (Generation 3)"
    return entry(f"bootguard-trial+{tries}.conf", action, title=title, sort_key="bootguard-0", version="2")


def fallback_entries(trial_action: str, golden_action: str = "ok", tries: int = 2) -> tuple[BlsEntry, ...]:
    """Golden gen 1, good intermediate gen 2, the trial's original gen 3, and bootguard's two copies.

    The NixOS entries all power off cleanly (`ok`) if booted, so a wrong selection ends the run visibly.
    """
    return (
        nixos_generation(1, golden_action),
        nixos_generation(2, "ok"),
        nixos_generation(3, "ok"),
        bootguard_golden(golden_action),
        bootguard_trial(trial_action, tries),
    )


NIXOS_LOADER_CONF = "timeout 0\ndefault nixos-generation-3.conf\n"  # what NixOS writes for generation 3
GLOB_LOADER_CONF = f"timeout 0\ndefault {GLOB}\n"
SET_DEFAULT_GLOB_BOOT = set_loader_var_then_reboot("LoaderEntryDefault", GLOB)
