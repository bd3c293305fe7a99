"""Human-readable durations for reasons shown to people (`1h12m`, `45s`)."""

from datetime import timedelta
from functools import lru_cache


@lru_cache(maxsize=1024)
def humanize(delta: timedelta) -> str:
    """Cached: the plan shows the same few durations (a stage's `min_age`) for many pairs."""
    seconds = max(0, round(delta.total_seconds()))
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3_600)
    minutes, seconds = divmod(seconds, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    if seconds or not parts:
        parts.append(f"{seconds}s")
    return "".join(parts[:2])


def short(commit: str | None) -> str:
    """The short form of a commit, as people read it."""
    return commit[:7] if commit else "(unknown)"
