"""Parse the guest's `BGVM-…` marker lines (see guest_init.sh) out of an ANSI-stripped serial log.

One `Boot` per `BGVM-BOOT` line: what systemd-boot told the guest (LoaderEntrySelected,
LoaderBootCountPath, every loader variable), the `bootguard.entry=` token of the kernel command line (what
GRUB boots carry), the watchdog's sysfs view, the ESP as the guest saw it (GRUB: /esp/grub/grubenv), which
action ran, and the exit status of every `bootguard` command the guest ran.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

LOADER_GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
_LINE = re.compile(r"^BGVM-(?P<kind>[A-Z-]+) (?P<rest>.*)$")
_KV = re.compile(r"(\S+?)=(\S*)")


@dataclass(frozen=True)
class EfiVar:
    """A loader variable as the guest read it from efivarfs: attribute word and raw data."""

    attrs: int
    data: bytes

    @classmethod
    def from_hex(cls, hexstr: str) -> EfiVar:
        raw = bytes.fromhex(hexstr)
        return cls(attrs=int.from_bytes(raw[:4], "little"), data=raw[4:])

    @property
    def text(self) -> str:
        """UTF-16LE string value without the terminating NUL."""
        return self.data.decode("utf-16-le", "replace").rstrip("\0")

    @property
    def strings(self) -> list[str]:
        """A NUL-separated list of UTF-16LE strings (LoaderEntries)."""
        return [s for s in self.data.decode("utf-16-le", "replace").split("\0") if s]


@dataclass
class Boot:
    """Everything the guest reported about one boot."""

    n: int
    selected: str
    countpath: str | None
    uptime: float
    cmdline_entry: str | None = None  # `bootguard.entry=ID` in /proc/cmdline (GRUB entries), else None
    grubenv: dict[str, str] = field(default_factory=dict)  # /esp/grub/grubenv as this boot found it
    grubenv_bytes: int | None = None  # its size (1024 unless broken); None: no grubenv on the ESP
    variables: dict[str, EfiVar] = field(default_factory=dict)
    watchdog: dict[str, str] = field(default_factory=dict)
    esp_entries: list[str] = field(default_factory=list)
    loader_conf: str = ""
    action: str = ""
    outcome: str = ""  # "reboot", "panic", "hang", "end:REASON", or "" when the log stops
    bg_results: list[tuple[int, str]] = field(default_factory=list)
    pstore_files: int = 0  # files in /sys/fs/pstore at boot (panic logs efi_pstore kept)
    errors: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def loader_info(self) -> str:
        var = self.variables.get("LoaderInfo")
        return var.text if var else ""

    @property
    def entry_file(self) -> str:
        """The entry file name this boot ended up with: countpath's last part, else the selected id."""
        if self.countpath:
            return self.countpath.rsplit("\\", 1)[-1]
        return self.selected

    @property
    def bootstatus(self) -> int | None:
        value = self.watchdog.get("bootstatus")
        return int(value) if value is not None and value.isdigit() else None


def _kv(rest: str) -> dict[str, str]:
    return dict(_KV.findall(rest))


def _grubenv_pairs(lines: list[str]) -> dict[str, str]:
    pairs = {}
    for line in lines:
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


def parse_grubenv(text: str) -> dict[str, str]:
    """The variables of a GRUB environment block (`key=value` lines; `#` lines and padding skipped)."""
    return _grubenv_pairs(text.splitlines())


def _apply(boot: Boot, kind: str, rest: str) -> None:
    kv = _kv(rest)
    if kind == "VAR":
        boot.variables[kv["name"]] = EfiVar.from_hex(kv["hex"])
    elif kind == "WDT":
        boot.watchdog = {k: v for k, v in kv.items() if k != "n"}
    elif kind == "ESP" and "entries=" in rest:
        boot.esp_entries = rest.split("entries=", 1)[1].split()
    elif kind == "ESP" and "loader.conf=" in rest:
        boot.loader_conf = rest.split("loader.conf=", 1)[1].replace(";", "\n")
    elif kind == "GRUBENV":
        boot.grubenv_bytes = int(kv.get("bytes", "-1"))
        boot.grubenv = _grubenv_pairs(rest.split("env=", 1)[1].split(";") if "env=" in rest else [])
    elif kind == "ACTION":
        boot.action = kv.get("name", "")
    elif kind in ("REBOOT", "PANIC", "HANG"):
        boot.outcome = kind.lower()
    elif kind == "END":
        boot.outcome = f"end:{kv.get('reason', '')}"
    elif kind == "BG":
        rc = int(kv.get("rc", "-1"))
        boot.bg_results.append((rc, rest.split("cmd=", 1)[1] if "cmd=" in rest else ""))
    elif kind == "PSTORE":
        boot.pstore_files = int(kv.get("files", "0"))
    elif kind in ("ERROR", "MODULE-FAILED"):
        boot.errors.append(f"{kind} {rest}")


def parse_boots(serial: str) -> list[Boot]:
    """The boots in a serial log, in order; each keeps the raw lines printed during it."""
    boots: list[Boot] = []
    for line in serial.splitlines():
        match = _LINE.match(line.strip())
        if match is None:
            if boots:
                boots[-1].lines.append(line)
            continue
        kind, rest = match.group("kind"), match.group("rest")
        if kind == "BOOT":
            kv = _kv(rest)
            countpath = kv.get("countpath", "-")
            cmdline_entry = kv.get("entry", "-")
            boots.append(
                Boot(
                    n=int(kv["n"]),
                    selected=kv.get("selected", "-"),
                    countpath=None if countpath == "-" else countpath,
                    uptime=float(kv.get("uptime", "0")),
                    cmdline_entry=None if cmdline_entry == "-" else cmdline_entry,
                )
            )
        elif boots and kind != "MODULE-FAILED":
            _apply(boots[-1], kind, rest)
        if boots:
            boots[-1].lines.append(line)
    return boots


def firmware_starts(serial: str) -> int:
    """How many times OVMF started a boot option (one per reset that reached the boot manager)."""
    return len(re.findall(r"^BdsDxe: starting ", serial, flags=re.MULTILINE))


def kernel_panics(serial: str) -> int:
    return serial.count("Kernel panic - not syncing")
