"""bootguard: keep self-updating systemd-boot Linux hosts from ever staying bricked.

This package's modules are layered; see docs/architecture.md. Nothing here may import
anything beyond the standard library: the early-boot path imports this package.
"""

__version__ = "0.1.0"
