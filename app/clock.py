"""The wall clock, in one place. Parts that decide take a clock as a callable (this one by
default), so tests and the simulation can hand them a virtual one."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, timezone-aware, in UTC."""
    return datetime.now(UTC)
