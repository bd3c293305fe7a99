"""How the client commands lay out what they print: tables, and a pause in words."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any


def table(rows: Sequence[Sequence[str]], indent: str = "  ") -> str:
    """Rows in left-aligned columns, the first row being the heading."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        indent
        + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def pause(pause: dict[str, Any], now: datetime) -> str:
    """A pause in words: why, by whom, and until when (in the form `--until` takes)."""
    text = str(pause["reason"])
    if pause.get("by"):
        text += f" (by {pause['by']})"
    if pause.get("until"):
        until = datetime.fromisoformat(pause["until"]).astimezone(UTC)
        text += f", until {until:%Y-%m-%dT%H:%MZ}"  # one format, as --until takes it
    return text
