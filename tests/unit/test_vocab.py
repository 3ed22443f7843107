"""The run-time base of closed vocabularies (bootguard/_vocab.py) behaves as the enums mypy sees."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bootguard.errors import ExitCode
from bootguard.model.events import EventKind
from bootguard.seams._wd_consts import WatchdogFlag


def test_members_are_singletons_found_by_value_and_name() -> None:
    assert EventKind("blessed") is EventKind.BLESSED
    assert EventKind["BLESSED"] is EventKind.BLESSED
    assert (EventKind.BLESSED.name, EventKind.BLESSED.value) == ("BLESSED", "blessed")
    assert isinstance(EventKind.BLESSED, EventKind)
    assert EventKind.BLESSED != "blessed"  # type: ignore[comparison-overlap]  # a member is not its value
    assert pickle.loads(pickle.dumps(EventKind.BLESSED)) is EventKind.BLESSED
    with pytest.raises(ValueError, match="not a valid EventKind"):
        EventKind("no-such-kind")
    with pytest.raises(AttributeError):
        EventKind.BLESSED.value = "x"  # type: ignore[misc]


def test_iteration_is_in_definition_order_and_complete() -> None:
    kinds = list(EventKind)
    assert kinds[0] is EventKind.BOOT_ATTEMPTED and len(kinds) == len(EventKind) == len(
        {k.value for k in kinds}
    )


def test_int_vocabularies_are_ints() -> None:
    assert ExitCode(ExitCode.STATE.value) is ExitCode.STATE
    assert int(ExitCode.STATE) == ExitCode.STATE.value and f"{ExitCode.STATE}" == str(int(ExitCode.STATE))
    both = WatchdogFlag.KEEPALIVEPING | WatchdogFlag.MAGICCLOSE
    assert both == 0x8100 and WatchdogFlag(0x8100) == 0x8100  # several bits: a plain int
    assert WatchdogFlag(0x20) is WatchdogFlag.CARDRESET


@given(st.sampled_from(EventKind))
def test_hypothesis_samples_a_vocabulary_as_an_enum(kind: EventKind) -> None:
    assert EventKind(kind.value) is kind


def test_the_early_boot_step_does_not_import_enum() -> None:
    code = "import sys, bootguard.earlyboot.step, bootguard.cli.main; print('enum' in sys.modules)"
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
