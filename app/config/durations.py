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


SPOKEN_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def spoken(delta: timedelta) -> str:
    """For the page: the two largest adjacent units, spaced (`2h 14m`, never `2h14s`), as
    people say an age or a wait; a zero second unit is left out (`2h`)."""
    seconds = max(0, round(delta.total_seconds()))
    index = next(i for i, (_u, size) in enumerate(SPOKEN_UNITS) if seconds >= size or size == 1)
    unit, size = SPOKEN_UNITS[index]
    text = f"{seconds // size}{unit}"
    if size > 1:
        smaller, smaller_size = SPOKEN_UNITS[index + 1]
        rest = seconds % size // smaller_size
        text += f" {rest}{smaller}" if rest else ""
    return text
