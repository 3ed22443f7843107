"""Real GRUB (Debian 12's 2.06) in the harness: saved_entry is the default, next_entry a one-shot.

What bootguard relies on for GRUB hosts: golden is `saved_entry` in grubenv, each try of a trial a
`next_entry` written with `grub-editenv` (as `grub-reboot` does), which GRUB's grub.cfg (grub-mkconfig's
GRUB_DEFAULT=saved header) boots once and clears with `save_env` on the FAT ESP.

Boot 1 boots saved_entry (gen-2) and, from the guest, writes next_entry=gen-3 with the host's grub-editenv;
boot 2 is gen-3 and finds next_entry cleared on the ESP; boot 3 is gen-2 again.
"""

from __future__ import annotations

import pytest

from tests.vm.harness import marks
from tests.vm.harness.grub import GRUB, GrubMenu
from tests.vm.harness.scenario import Scenario, ScenarioResult, grub_entry

pytestmark = pytest.mark.vm

ONE_SHOT_GEN3 = """\
grub_editenv set next_entry=gen-3
settle
do_reboot
"""


def next_entry_once(_major: str) -> Scenario:
    return Scenario(
        name="grub-next-entry-once",
        grub=GrubMenu(
            entries=(grub_entry("gen-1", "ok"), grub_entry("gen-2", "ok"), grub_entry("gen-3", "reboot")),
            env={"saved_entry": "gen-2"},
        ),
        control={"boot-1.sh": ONE_SHOT_GEN3},
        max_boots=4,
        timeout=300.0,
    )


@pytest.mark.parametrize("loader", [GRUB])
@marks.boots(next_entry_once)
def test_next_entry_boots_once_then_saved_entry_again(loader: str, vm_result: ScenarioResult) -> None:
    """GRUB boots saved_entry, then next_entry once (clearing it on the ESP), then saved_entry again."""
    r = vm_result
    assert r.run.stopped == "poweroff", r.describe()
    assert r.cmdline_entries == ["gen-2", "gen-3", "gen-2"], r.describe()
    first, second, third = r.boots
    assert first.grubenv == {"saved_entry": "gen-2"}, r.describe()
    assert any(line.startswith("BGVM-EDITENV rc=0") for line in first.lines), r.describe()
    # GRUB's `save_env next_entry` rewrote the block in place: empty next_entry, still 1024 bytes.
    assert second.grubenv == {"saved_entry": "gen-2", "next_entry": ""}, r.describe()
    assert second.grubenv_bytes == 1024, r.describe()
    assert [b.action for b in r.boots] == ["boot-1", "reboot", "ok"], r.describe()
    assert third.grubenv.get("next_entry", "") == "", r.describe()
    assert r.grubenv_at_end() == {"saved_entry": "gen-2", "next_entry": ""}, r.describe()
    assert all(b.selected == "-" for b in r.boots), r.describe()  # GRUB sets no LoaderEntrySelected
