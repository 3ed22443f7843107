"""The node-exporter textfile format, and replacing the file atomically.

node-exporter's textfile collector reads `*.prom` files from one directory
(`--collector.textfile.directory`; `/var/lib/prometheus/node-exporter` on Debian). A file must be
replaced with a rename, never rewritten in place, or a scrape can see half of it. Every family is
written with HELP and TYPE, once, even when it has no sample (so a dashboard can tell "zero series"
from "old bootguard").
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from bootguard.seams.fs import atomic_write


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer():
        return str(int(value))
    return repr(round(float(value), 3))


class Out:
    """Lines of one textfile: families in the order they are declared, samples below their family."""

    def __init__(self) -> None:
        self._families: dict[str, list[str]] = {}

    def family(self, name: str, kind: str, help_text: str) -> None:
        if name not in self._families:
            self._families[name] = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def sample(self, name: str, value: float, **labels: str | None) -> None:
        """One sample of an already declared family; labels whose value is None are left out."""
        inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items() if v is not None)
        self._families[name].append(
            f"{name}{{{inner}}} {number(value)}" if inner else f"{name} {number(value)}"
        )

    def gauge(self, name: str, help_text: str, value: float | None, **labels: str | None) -> None:
        """Declare a gauge and give it one sample, unless the value is unknown (None)."""
        self.family(name, "gauge", help_text)
        if value is not None:
            self.sample(name, value, **labels)

    def text(self) -> str:
        return "\n".join(line for lines in self._families.values() for line in lines) + "\n"


def write(path: str | os.PathLike[str], text: str) -> Path:
    """Replace the textfile atomically; 0644 because node-exporter runs as its own user."""
    target = Path(path)
    atomic_write(target, text.encode("utf-8"), mode=0o644)
    return target
