"""Freeze windows: which `[[freeze]]` entries are in force at a moment, and until when.

The cron expression is read by APScheduler's `CronTrigger`, in the entry's time zone.
A freeze starts at each of its cron's times and lasts its duration; windows that
overlap or touch are one window, so `ends_at` is when promotions may move again.
Standard cron numbers days of the week from Sunday (0 and 7); APScheduler 3 numbers
them from Monday, so the day-of-week field is spelt out as names first. Durations are
counted in real time (UTC), so a window across a DST change lasts exactly its duration.
"""

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from app.config.services import Freeze
from app.signals.freezes.facts import FreezeWindow

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_ITEM = re.compile(r"(?:\*|(\w+)(?:-(\w+))?)(?:/(\d+))?", re.ASCII)
MAX_STARTS = 10_000  # a freeze starting every minute for days is still answered, in bounded time


def windows(freezes: Iterable[Freeze], service: str, now: datetime) -> tuple[FreezeWindow, ...]:
    """The freeze windows that hold `service` at `now`."""
    found = []
    for freeze in freezes:
        if freeze.services and service not in freeze.services:
            continue
        span = _span(freeze.cron, freeze.timezone, freeze.duration, _minute(now))
        if span is not None and span[0] <= now < span[1]:
            found.append(FreezeWindow(freeze.reason, span[0], span[1], not freeze.services))
    return tuple(found)


def trigger(cron: str, timezone: str) -> CronTrigger:
    """The APScheduler trigger of a 5-field cron expression; ValueError when it refuses it."""
    minute, hour, day, month, weekday = cron.split()
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_weekdays(weekday),
        timezone=ZoneInfo(timezone),
    )


def _weekdays(field: str) -> str:
    """A standard cron day-of-week field (0 or 7 = Sunday, names too) as APScheduler names."""
    days: set[int] = set()
    for item in field.split(","):
        match = _ITEM.fullmatch(item)
        if match is None:
            raise ValueError(f"day of week {item!r} is not understood")
        low, high, step = match.groups()
        first = 0 if low is None else _day(low)
        last = (6 if low is None else first) if high is None else _day(high)
        if last < first and last == 0:
            last = 7  # "FRI-SUN": through Sunday
        if step is not None and high is None and low is not None:
            last = 7
        days.update(d % 7 for d in range(first, last + 1, int(step or 1)))
    return ",".join(_DAYS[d] for d in sorted(days))


def _day(token: str) -> int:
    if token.isdigit():
        return int(token)
    return _DAYS.index(token.lower()[:3])


@lru_cache(maxsize=4096)
def _span(
    cron: str, timezone: str, duration: timedelta, minute: datetime
) -> tuple[datetime, datetime] | None:
    """The window in force during `minute`, merged with the ones it runs into; None: none.

    Cron times fall on whole minutes, so the answer is the same for every moment of one
    minute, which is what makes it cacheable.
    """
    fire = _trigger(cron, timezone).get_next_fire_time
    first = fire(None, minute - duration + timedelta(seconds=1))
    if first is None or first > minute:
        return None
    start = first = first.astimezone(UTC)
    end = start + duration
    for _ in range(MAX_STARTS):
        later = fire(start, start + timedelta(seconds=1))
        if later is None or later.astimezone(UTC) > end:
            break
        start = later.astimezone(UTC)
        end = max(end, start + duration)
    return first, end


@lru_cache(maxsize=256)
def _trigger(cron: str, timezone: str) -> CronTrigger:
    return trigger(cron, timezone)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)
