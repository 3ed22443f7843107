"""A real host tree for tests: an ESP directory with real entry files, an efivarfs-format directory
and a state directory, plus a driver for the real CLI. Not a mock: bootguard reads and renames these
files exactly as it does on a host."""

from __future__ import annotations

import contextlib
import io
import json
import struct
from pathlib import Path

from bootguard.cli.main import main

GUID = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"


def entry_text(
    title: str, version: str | None = None, options: str = "quiet", sort_key: str | None = None
) -> str:
    lines = [f"title {title}"]
    if version:
        lines.append(f"version {version}")
    if sort_key:
        lines.append(f"sort-key {sort_key}")
    lines += ["linux /vmlinuz", "initrd /initrd.img", f"options {options}"]
    return "\n".join(lines) + "\n"


class HostTree:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.esp = root / "esp"
        self.efivars = root / "efivars"
        self.state = root / "state"
        (self.esp / "loader" / "entries").mkdir(parents=True)
        self.efivars.mkdir()
        # The images entry_text() refers to, so that golden's images can be copied.
        (self.esp / "vmlinuz").write_bytes(b"kernel")
        (self.esp / "initrd.img").write_bytes(b"initrd")

    # --- ESP ---------------------------------------------------------------------------------------
    def add_entry(self, filename: str, text: str | None = None, **kw: str) -> Path:
        path = self.esp / "loader" / "entries" / filename
        path.write_text(
            text if text is not None else entry_text(filename.split(".conf", maxsplit=1)[0], **kw)
        )
        return path

    def entries(self) -> list[str]:
        return sorted(p.name for p in (self.esp / "loader" / "entries").iterdir())

    def loader_conf(self, text: str) -> None:
        (self.esp / "loader" / "loader.conf").write_text(text)

    # --- efivarfs ----------------------------------------------------------------------------------
    def set_var(self, name: str, value: str | None, attrs: int = 0x6) -> None:
        path = self.efivars / f"{name}-{GUID}"
        if value is None:
            path.unlink(missing_ok=True)
            return
        path.write_bytes(struct.pack("<I", attrs) + (value + "\0").encode("utf-16-le"))

    def get_var(self, name: str) -> str | None:
        return self.get_var_guid(name, GUID)

    def get_var_guid(self, name: str, guid: str) -> str | None:
        path = self.efivars / f"{name}-{guid}"
        if not path.exists():
            return None
        return path.read_bytes()[4:].decode("utf-16-le").rstrip("\0")

    def booted(self, filename: str | None, *, loader: str = "systemd-boot 252.39-1~deb12u2") -> None:
        """Pretend systemd-boot booted `filename` (already renamed) and set its variables."""
        self.set_var("LoaderInfo", loader)
        self.set_var(
            "LoaderBootCountPath",
            None if filename is None or "+" not in filename else f"\\loader\\entries\\{filename}",
        )
        if filename is not None:
            self.set_var("LoaderEntrySelected", filename.lower())

    # --- CLI ---------------------------------------------------------------------------------------
    def cli(self, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        argv = ["--esp", str(self.esp), "--efivars", str(self.efivars), "--state-dir", str(self.state), *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        return code, out.getvalue(), err.getvalue()

    def cli_json(self, *args: str) -> object:
        code, out, err = self.cli("--json", *args)
        assert code == 0, err
        return json.loads(out)

    def initrd(self, *extra: str) -> dict[str, object]:
        """`initrd --json` as a fresh boot (new boot id); a reboot it asks for runs `true`, not a reboot."""
        import uuid

        code, out, err = self.cli(
            "--json", "initrd", "--boot-id", str(uuid.uuid4()), "--reboot-command", "true", *extra
        )
        assert code == 0, err
        result = json.loads(out)
        assert isinstance(result, dict)
        return result

    def events(self) -> list[dict[str, object]]:
        data = self.cli_json("events")
        assert isinstance(data, list)
        return data
