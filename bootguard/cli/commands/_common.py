"""Helpers shared by command modules (kept light: imported at run time only)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from bootguard.cli.main import Context


def report(ctx: Context, result: dict[str, object], code: int = 0) -> int:
    """Print a service summary as JSON or as its messages, and return `code`."""
    from bootguard.cli.output import emit_json, say

    if ctx.json:
        emit_json(result)
    else:
        messages = result.get("messages", [])
        for line in messages if isinstance(messages, list) else []:
            say(str(line))
    return code
