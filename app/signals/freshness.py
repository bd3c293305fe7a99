"""How fresh each signal source is: when Cascade last heard it, and whether that still counts.

A polled source is stale after three missed polls; a webhook source that is silent by
nature proves itself alive by a heartbeat, or counts only as long as the operator allows
(CASCADE_SILENT_SOURCE_MAX_AGE). Stale is unknown, and unknown is closed. `/status`, the
dashboard and `cascade status` show these lines.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.config.durations import humanize


@dataclass(frozen=True)
class Freshness:
    """One source of one signal, as of `now`."""

    signal: str  # "alerts", "incidents", "github", "heroku"
    source: str  # "alertmanager", "librato", "status page", …
    how: str  # "webhook", "poll", or "heartbeat <alertname>"
    last: datetime | None  # the last delivery, poll or heartbeat; None: never
    limit: timedelta | None  # older than this is stale; None: its age never gates
    stale: bool

    def describe(self, now: datetime) -> str:
        """`alerts: last heard 3m ago from alertmanager (heartbeat Watchdog)`."""
        return describe(self.signal, self.source, self.how, self.last, self.limit, self.stale, now)


def describe(
    signal: str,
    source: str,
    how: str,
    last: datetime | None,
    limit: timedelta | None,
    stale: bool,
    now: datetime,
) -> str:
    """One source's line, as `/status`'s clients and the dashboard show it."""
    heard = "never heard" if last is None else f"last heard {humanize(now - last)} ago"
    line = f"{signal}: {heard} from {source} ({how})"
    if stale and limit is not None:
        line += f": stale, over {humanize(limit)}: unknown"
    return line


def judge(
    signal: str,
    source: str,
    how: str,
    last: datetime | None,
    limit: timedelta | None,
    now: datetime,
) -> Freshness:
    """A source's freshness: stale when never heard or heard longer ago than `limit`."""
    stale = limit is not None and (last is None or now - last > limit)
    return Freshness(signal, source, how, last, limit, stale)
