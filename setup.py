"""Build glue for the optional C extension (bootguard._native_wd).

Everything else is in pyproject.toml. The extension is optional: where no C compiler or no
<linux/watchdog.h> exists the build carries on and bootguard uses its pure-Python watchdog backend
(chosen once at import; see bootguard/seams/watchdog.py).
"""

from __future__ import annotations

import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Tolerate a failed compile of the optional extension."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            print(f"bootguard: optional C extension not built ({exc}); using pure Python", file=sys.stderr)

    def build_extension(self, ext: object) -> None:
        try:
            super().build_extension(ext)  # type: ignore[arg-type]
        except Exception as exc:
            print(f"bootguard: optional C extension not built ({exc}); using pure Python", file=sys.stderr)


setup(
    cffi_modules=["c_ext/watchdog_build.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
)
