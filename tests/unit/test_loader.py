"""The systemd-boot model: versions, loader.conf, sort order, selection and whole boot sequences.

The boot sequences replay the version table of shared/reference/vm-harness.md (real systemd-boot
252, 254, 257.13 and 262.1 under OVMF): every boot of the trial fails, nothing blesses it.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bootguard.model.entry import BootEntry, IdScheme, Partition
from bootguard.model.loader import (
    BootSimulation,
    LoaderConf,
    LoaderVars,
    LoaderVersion,
    SelectionReason,
    compare_entries,
    select_next,
    simulate_boot,
    sort_entries,
)

# The shared CI machine is often loaded: no per-example deadline, a bounded example count.
_RELAXED = settings(deadline=None, max_examples=150)

V252 = LoaderVersion.parse("systemd-boot 252.39-1~deb12u2")
V254 = LoaderVersion.parse("systemd-boot 254.26-1~bpo12+1")
V257 = LoaderVersion.parse("systemd-boot 257.13-1~deb13u1")
V262 = LoaderVersion.parse("systemd-boot 262.1-1")
ALL_VERSIONS = [V252, V254, V257, V262]
OLD_IDS = [V252, V254]  # ids keep the counter
NEW_IDS = [V257, V262]  # ids drop the counter

GOLDEN, INTERMEDIATE, TRIAL = "bg-1.0.conf", "bg-1.5.conf", "bg-2.0+2.conf"


def entry(
    filename: str, body: bytes = b"linux /vmlinuz\n", partition: Partition = Partition.ESP
) -> BootEntry:
    return BootEntry.from_conf(f"loader/entries/{filename}", body, partition)


def conf(text: str = "") -> LoaderConf:
    return LoaderConf.parse(text.encode())


def boot_failing(
    files: list[str], loader_conf: str, version: LoaderVersion, boots: int, lvars: LoaderVars | None = None
) -> tuple[list[str], list[str], list[BootSimulation]]:
    """Boot `boots` times without ever blessing; returns booted file names, final file names, simulations."""
    entries: tuple[BootEntry, ...] = tuple(entry(f) for f in files)
    current = lvars or LoaderVars.empty()
    booted: list[str] = []
    sims: list[BootSimulation] = []
    for _ in range(boots):
        sim = simulate_boot(entries, conf(loader_conf), current, version)
        assert sim.selection.entry is not None
        booted.append(sim.selection.entry.filename)
        sims.append(sim)
        entries, current = sim.entries, sim.vars
    return booted, sorted(e.filename for e in entries), sims


# --- versions --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "number", "scheme", "preferred", "efi_counted"),
    [
        (V252, (252, 39), IdScheme.COUNTER_KEPT, False, True),
        (V254, (254, 26), IdScheme.COUNTER_KEPT, False, True),
        (V257, (257, 13), IdScheme.STRIPPED_KEEP_CASE, False, True),
        (LoaderVersion.parse("systemd-boot 257.7-1"), (257, 7), IdScheme.COUNTER_KEPT, False, True),
        (LoaderVersion.parse("systemd-boot 258.3"), (258, 3), IdScheme.STRIPPED_LOWER, False, True),
        (LoaderVersion.parse("systemd-boot 259"), (259, 0), IdScheme.STRIPPED_LOWER, False, False),
        (V262, (262, 1), IdScheme.STRIPPED_LOWER, True, False),
    ],
)
def test_versions(
    version: LoaderVersion, number: tuple[int, int], scheme: IdScheme, preferred: bool, efi_counted: bool
) -> None:
    """LoaderInfo strings give the version and its id scheme, preferred support and efi-entry counting."""
    assert version.known
    assert (version.major, version.minor) == number
    assert version.id_scheme() is scheme
    assert version.supports_preferred() is preferred
    assert version.counts_efi_entries() is efi_counted


@pytest.mark.parametrize("info", [None, "", "GRUB 2.12", "systemd-boot", "systemd-boot x.y", "sprout 1.0"])
def test_unknown_loaders(info: str | None) -> None:
    """Anything but `systemd-boot N…` is unknown: current id scheme, no preferred support, raw kept."""
    v = LoaderVersion.parse(info)
    assert not v.known
    assert v.raw == info
    assert v.id_scheme() is IdScheme.STRIPPED_LOWER
    assert not v.supports_preferred()


# --- loader.conf -----------------------------------------------------------------------------------


def test_loader_conf_parse() -> None:
    """default, preferred and timeout are read; the last line wins; unknown @ ids are ignored; flagged."""
    c = conf(
        "timeout 3\ndefault first.conf\n# default commented.conf\ndefault bg-*\npreferred @weird\neditor no\n"
    )
    assert (c.default, c.preferred, c.timeout) == ("bg-*", None, "3")
    assert c.get("editor") == "no"
    assert c.get("absent") is None
    assert any("@weird" in p for p in c.problems)
    assert conf("default @SAVED").default == "@SAVED"
    assert LoaderConf.empty().default is None


def test_loader_vars_empty() -> None:
    """The empty variable set has no values and no entries."""
    v = LoaderVars.empty()
    assert v.entries == ()
    assert v.boot_count_path is None
    assert v.entry_default is None
    assert v.features is None


# --- sort order ------------------------------------------------------------------------------------


def test_sort_rules() -> None:
    """Bad last; sort-key entries first by key, machine-id, newest version; then newest id; then counters."""
    files = {
        "z-bad+0-3.conf": b"linux /k\nsort-key aaa\n",
        "plain-1.conf": b"linux /k\n",
        "plain-2.conf": b"linux /k\n",
        "k-old.conf": b"linux /k\nsort-key os\nversion 1.9\n",
        "k-new.conf": b"linux /k\nsort-key os\nversion 1.10\n",
        "k-other-machine.conf": b"linux /k\nsort-key os\nmachine-id ff\nversion 9\n",
        "a-first.conf": b"linux /k\nsort-key a\n",
    }
    entries = [entry(name, body) for name, body in files.items()]
    order = [e.filename for e in sort_entries(entries, IdScheme.STRIPPED_LOWER)]
    assert order == [
        "a-first.conf",
        "k-new.conf",  # no machine-id sorts before machine-id ff
        "k-old.conf",
        "k-other-machine.conf",
        "plain-2.conf",
        "plain-1.conf",
        "z-bad+0-3.conf",
    ]


def test_counters_break_ties_between_same_ids() -> None:
    """With counter-free ids equal, more tries left first, then fewer tries done."""
    entries = [entry("x+1-2.conf"), entry("x+2-5.conf"), entry("x+1-1.conf")]
    order = [e.filename for e in sort_entries(entries, IdScheme.STRIPPED_LOWER)]
    assert order == ["x+2-5.conf", "x+1-1.conf", "x+1-2.conf"]


_FILES = st.builds(
    lambda stem, counter: stem + counter + ".conf",
    st.sampled_from(["bg-1.0", "bg-2.0", "Bg-2.0", "x", "x-10", "x-9"]),
    st.sampled_from(["", "+0", "+0-1", "+1", "+1-1", "+2", "+2-0", "+3-2"]),
)
_BODIES = st.builds(
    lambda key, mid, ver: (
        b"linux /k\n"
        + b"".join(
            f"{k} {v}\n".encode()
            for k, v in (("sort-key", key), ("machine-id", mid), ("version", ver))
            if v is not None
        )
    ),
    st.one_of(st.none(), st.sampled_from(["a", "b", ""])),
    st.one_of(st.none(), st.sampled_from(["1", "2"])),
    st.one_of(st.none(), st.sampled_from(["1.0", "1.10", "1.9", "2~rc1"])),
)
_ENTRIES = st.builds(entry, _FILES, _BODIES)


@_RELAXED
@given(_ENTRIES, _ENTRIES, _ENTRIES, st.sampled_from(list(IdScheme)))
def test_compare_is_a_total_order(a: BootEntry, b: BootEntry, c: BootEntry, scheme: IdScheme) -> None:
    """boot_entry_compare is antisymmetric and transitive, so the menu order is well defined.

    Except, as upstream, for twins (one entry with and without a counter, unsupported by systemd:
    issue 15667): the counter tiebreak applies only when both are counted, so an uncounted twin ties
    with two counted ones that do not tie with each other. `bootguard arm` refuses to create twins.
    """
    ids = {e.id(scheme) for e in (a, b, c)}
    counted = {e.counter is not None for e in (a, b, c)}
    assume(not (len(ids) < 3 and counted == {True, False}))
    assert compare_entries(a, b, scheme) == -compare_entries(b, a, scheme)
    assert compare_entries(a, a, scheme) == 0
    for x, y, z in itertools.permutations((a, b, c)):
        if compare_entries(x, y, scheme) <= 0 and compare_entries(y, z, scheme) <= 0:
            assert compare_entries(x, z, scheme) <= 0


@_RELAXED
@given(st.lists(_ENTRIES, max_size=8), st.sampled_from(list(IdScheme)))
def test_sorted_order_follows_reference_rules(entries: list[BootEntry], scheme: IdScheme) -> None:
    """In sorted order no bad entry precedes a non-bad one, and no keyless entry precedes a keyed one."""
    ordered = sort_entries(entries, scheme)
    for first, second in itertools.pairwise(ordered):
        assert compare_entries(first, second, scheme) <= 0
        assert not (first.tries_left == 0 and second.tries_left != 0)
        if (first.tries_left == 0) == (second.tries_left == 0):
            assert not (first.sort_key is None and second.sort_key is not None)


# --- the vm-harness version table ------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_default_glob_falls_back_after_two_failed_boots(version: LoaderVersion) -> None:
    """`default bg-*`: +2 -> +1-1 -> +0-2, then the good entry boots (bad entries sort last)."""
    booted, final, sims = boot_failing([GOLDEN, TRIAL], "default bg-*\n", version, 4)
    assert booted == [TRIAL, "bg-2.0+1-1.conf", GOLDEN, GOLDEN]
    assert final == [GOLDEN, "bg-2.0+0-2.conf"]
    assert [s.renamed_to for s in sims[:2]] == [
        "loader/entries/bg-2.0+1-1.conf",
        "loader/entries/bg-2.0+0-2.conf",
    ]
    assert sims[2].boot_count_path is None
    assert sims[2].vars.boot_count_path is None


@pytest.mark.parametrize("version", [V252, V262])
def test_default_glob_falls_back_to_the_intermediate(version: LoaderVersion) -> None:
    """With an intermediate good entry present, `default bg-*` falls back to it, not to the golden one."""
    booted, _, _ = boot_failing([GOLDEN, INTERMEDIATE, TRIAL], "default bg-*\n", version, 3)
    assert booted == [TRIAL, "bg-2.0+1-1.conf", INTERMEDIATE]


@pytest.mark.parametrize("version", OLD_IDS)
def test_exact_efi_default_stops_matching_after_rename_on_old_ids(version: LoaderVersion) -> None:
    """252/254: LoaderEntryDefault = the trial's id matches once; the renamed trial stays at +1-1."""
    trial_id = entry(TRIAL).id(version.id_scheme())
    assert trial_id == "bg-2.0+2.conf"
    booted, final, sims = boot_failing(
        [GOLDEN, TRIAL], "default bg-1.0.conf\n", version, 3, LoaderVars(entry_default=trial_id)
    )
    assert booted == [TRIAL, GOLDEN, GOLDEN]
    assert final == [GOLDEN, "bg-2.0+1-1.conf"]
    assert sims[0].selection.reason is SelectionReason.EFI_DEFAULT
    assert sims[1].selection.reason is SelectionReason.CONF_DEFAULT


@pytest.mark.parametrize("version", NEW_IDS)
def test_exact_efi_default_loops_on_the_bad_trial_on_new_ids(version: LoaderVersion) -> None:
    """257.13/262: the counter-free id keeps matching: the bad trial boots forever (+0-2 -> +0-3 …)."""
    trial_id = entry(TRIAL).id(version.id_scheme())
    assert trial_id == "bg-2.0.conf"
    booted, final, sims = boot_failing(
        [GOLDEN, TRIAL], "default bg-1.0.conf\n", version, 5, LoaderVars(entry_default=trial_id)
    )
    assert booted == [TRIAL, "bg-2.0+1-1.conf", "bg-2.0+0-2.conf", "bg-2.0+0-3.conf", "bg-2.0+0-4.conf"]
    assert final == [GOLDEN, "bg-2.0+0-5.conf"]
    assert "40192" in sims[-1].selection.detail
    assert "bad" in sims[-1].selection.detail


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (V252, [TRIAL, "bg-2.0+1-1.conf", GOLDEN, GOLDEN]),
        (V257, [GOLDEN, GOLDEN, GOLDEN, GOLDEN]),
        (V262, [GOLDEN, GOLDEN, GOLDEN, GOLDEN]),
    ],
)
def test_counter_glob_in_efi_default(version: LoaderVersion, expected: list[str]) -> None:
    """LoaderEntryDefault `bg-2.0+[1-9]*`: trial twice then golden on 252; never the trial on 257.13/262."""
    booted, _, _ = boot_failing(
        [GOLDEN, TRIAL], "default bg-1.0.conf\n", version, 4, LoaderVars(entry_default="bg-2.0+[1-9]*")
    )
    assert booted == expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (V252, [GOLDEN, GOLDEN, GOLDEN]),
        (V257, [GOLDEN, GOLDEN, GOLDEN]),
        (V262, [TRIAL, "bg-2.0+1-1.conf", GOLDEN]),
    ],
)
def test_preferred_line_in_loader_conf(version: LoaderVersion, expected: list[str]) -> None:
    """`preferred bg-2.0.conf` + `default bg-1.0.conf`: ignored before 260, trial twice then golden on 262."""
    booted, _, sims = boot_failing(
        [GOLDEN, TRIAL], "preferred bg-2.0.conf\ndefault bg-1.0.conf\n", version, 3
    )
    assert booted == expected
    if not version.supports_preferred():
        assert "'preferred' is ignored" in sims[0].selection.detail
    else:
        assert sims[0].selection.reason is SelectionReason.CONF_PREFERRED
        assert sims[2].selection.reason is SelectionReason.CONF_DEFAULT
        assert "only bad entries: 1" in sims[2].selection.detail


def test_preferred_variable_on_262() -> None:
    """LoaderEntryPreferred + `default bg-1.0.conf` on 262: trial twice, then golden."""
    booted, _, sims = boot_failing(
        [GOLDEN, TRIAL], "default bg-1.0.conf\n", V262, 3, LoaderVars(entry_preferred="bg-2.0.conf")
    )
    assert booted == [TRIAL, "bg-2.0+1-1.conf", GOLDEN]
    assert [s.selection.reason for s in sims] == [
        SelectionReason.EFI_PREFERRED,
        SelectionReason.EFI_PREFERRED,
        SelectionReason.CONF_DEFAULT,
    ]
    assert sims[2].vars.entry_preferred == "bg-2.0.conf"  # non-volatile: stays set


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_only_bad_entries(version: LoaderVersion) -> None:
    """With only bad entries the first in sort order (bg-3.0) boots and is renamed +0-1 -> +0-2."""
    booted, final, sims = boot_failing(["bg-2.0+0-2.conf", "bg-3.0+0-1.conf"], "default bg-*\n", version, 1)
    assert booted == ["bg-3.0+0-1.conf"]
    assert final == ["bg-2.0+0-2.conf", "bg-3.0+0-2.conf"]
    assert sims[0].boot_count_path == "\\loader\\entries\\bg-3.0+0-2.conf"


@pytest.mark.parametrize(
    ("version", "selected"),
    [(V252, "bg-2.0+2.conf"), (V254, "bg-2.0+2.conf"), (V257, "Bg-2.0.conf"), (V262, "bg-2.0.conf")],
)
def test_variables_after_a_counted_boot(version: LoaderVersion, selected: str) -> None:
    """LoaderEntrySelected holds the id before the rename per scheme; LoaderBootCountPath the new path."""
    sim = simulate_boot([entry("Bg-2.0+2.conf")], conf("default *"), LoaderVars.empty(), version)
    assert sim.vars.entry_selected == selected
    assert sim.vars.boot_count_path == "\\loader\\entries\\Bg-2.0+1-1.conf"
    assert sim.renamed_from == "loader/entries/Bg-2.0+2.conf"
    assert sim.vars.entries == (selected,)
    assert sim.vars.info == version.raw


def test_case_kept_ids_change_the_order_on_257() -> None:
    """On 257.13 ids keep their case: `Bg-2.0` sorts after `bg-1.0` (B < b), so `default *` picks bg-1.0."""
    entries = [entry(GOLDEN), entry("Bg-2.0+2.conf")]
    assert select_next(entries, conf("default *"), LoaderVars.empty(), V257).entry_id == "bg-1.0.conf"
    assert select_next(entries, conf("default *"), LoaderVars.empty(), V262).entry_id == "bg-2.0.conf"


# --- selection details -----------------------------------------------------------------------------


def test_oneshot_wins_once_and_is_consumed() -> None:
    """LoaderEntryOneShot beats LoaderEntryDefault, may pick a bad entry, and is deleted by the boot."""
    entries = [entry(GOLDEN), entry("bg-2.0+0-2.conf")]
    lvars = LoaderVars(entry_oneshot="BG-2.0+0-2.CONF", entry_default="bg-1.0.conf")
    sim = simulate_boot(entries, conf(), lvars, V252)
    assert sim.selection.reason is SelectionReason.ONESHOT
    assert sim.selection.entry is not None
    assert sim.selection.entry.filename == "bg-2.0+0-2.conf"
    assert sim.vars.entry_oneshot is None
    again = simulate_boot(sim.entries, conf(), sim.vars, V252)
    assert again.selection.reason is SelectionReason.EFI_DEFAULT


def test_saved_entry() -> None:
    """`default @saved` boots LoaderEntryLastBooted (matched unfolded) and records the booted id."""
    entries = [entry(GOLDEN), entry(INTERMEDIATE)]
    sim = simulate_boot(entries, conf("default @saved"), LoaderVars(entry_last_booted="bg-1.0.conf"), V262)
    assert sim.selection.reason is SelectionReason.SAVED
    assert sim.vars.entry_last_booted == "bg-1.0.conf"
    first = simulate_boot(entries, conf("default @saved"), LoaderVars.empty(), V262)
    assert first.selection.reason is SelectionReason.FIRST_ENTRY
    assert first.vars.entry_last_booted == "bg-1.5.conf"


def test_no_entries() -> None:
    """Without a listable entry nothing is selected and nothing is renamed."""
    sim = simulate_boot([entry("broken.conf", b"title no loader\n")], conf(), LoaderVars.empty(), V262)
    assert sim.selection.entry is None
    assert sim.selection.reason is SelectionReason.NONE
    assert sim.renamed_to is None
    assert sim.vars.entries == ()


def test_unlisted_entries_are_never_selected() -> None:
    """Entries systemd-boot would not list (no loader line, auto- names) are skipped by the model."""
    entries = [entry("zzz.conf", b"title nothing to boot\n"), entry("auto-x.conf"), entry(GOLDEN)]
    sel = select_next(entries, conf("default *"), LoaderVars.empty(), V262)
    assert sel.entry is not None
    assert sel.entry.filename == GOLDEN
    assert sel.pattern == "*"


def test_first_entry_detail_mentions_bad_entries() -> None:
    """The fallback explains that bad entries sort last."""
    sel = select_next([entry(GOLDEN), entry("bg-2.0+0-2.conf")], conf(), LoaderVars.empty(), V252)
    assert sel.reason is SelectionReason.FIRST_ENTRY
    assert "bad entries sort last" in sel.detail


def test_rename_failure_leaves_the_boot_uncounted() -> None:
    """A failed rename (read-only ESP) boots the entry anyway with no LoaderBootCountPath."""
    entries = [entry(TRIAL)]
    sim = simulate_boot(entries, conf(), LoaderVars(boot_count_path="\\old"), V252, rename_fails=True)
    assert sim.renamed_to is None
    assert sim.boot_count_path is None
    assert sim.vars.boot_count_path is None
    assert sim.entries == tuple(entries)
    assert "rename failed" in sim.note


def test_rename_onto_an_existing_name_fails() -> None:
    """The target name already existing (case-insensitively, as on FAT) makes the rename fail."""
    entries = [entry("a+2.conf"), entry("A+1-1.conf")]
    sim = simulate_boot(entries, conf(), LoaderVars.empty(), V252)
    assert sim.selection.entry is not None
    assert sim.selection.entry.filename == "a+2.conf"
    assert sim.renamed_to is None
    assert sim.boot_count_path is None
    assert "exists" in sim.note


@pytest.mark.parametrize(("version", "counted"), [(V257, True), (V262, False)])
def test_efi_line_entries_are_not_counted_since_259(version: LoaderVersion, counted: bool) -> None:
    """Type #1 entries with an `efi` line are renamed before 259 and left alone after (issue 40405)."""
    sim = simulate_boot([entry("u+3.conf", b"efi /EFI/x/u.efi\n")], conf(), LoaderVars.empty(), version)
    assert (sim.renamed_to is not None) is counted
    assert (sim.boot_count_path is not None) is counted


def test_uki_entries_are_counted() -> None:
    """A Type #2 UKI on XBOOTLDR is renamed in EFI/Linux and LoaderBootCountPath names it."""
    uki = BootEntry.from_uki("EFI/Linux/os-6.1+3.efi", Partition.XBOOTLDR)
    sim = simulate_boot([uki], conf(), LoaderVars.empty(), V262)
    assert sim.boot_count_path == "\\EFI\\Linux\\os-6.1+2-1.efi"
    assert sim.entries[0].partition is Partition.XBOOTLDR
    assert sim.vars.entry_selected == "os-6.1.efi"
