"""Why the incidents view cannot say what is open, and how fresh its sources are.

The status page read every poll (STATUS_API_URL) vouches for itself while its last read
is recent; without it, status webhooks' silence means "nothing open" only within
CASCADE_SILENT_SOURCE_MAX_AGE. Otherwise the answer is a problem, which keeps the incident
gate unknown (closed). Pure: it judges what the view read.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.config.durations import humanize
from app.signals.freshness import Freshness, judge
from app.signals.incidents.facts import Feed
from app.signals.incidents.stored import Failure

SIGNAL = "incidents"
MISSED_POLLS = 3  # a feed read longer ago than this many poll intervals is unknown
STALE_AFTER = MISSED_POLLS * timedelta(seconds=60)
SILENCE_MAX = timedelta(hours=24)
NO_SOURCE = (
    "no status source: set STATUS_API_URL, or point a Statuspage webhook at"
    " /webhooks/status?token=<CASCADE_WEBHOOK_TOKEN>"
)


@dataclass(frozen=True)
class Expected:
    """The status sources this Cascade listens to, and how long each may stay silent."""

    url: str | None  # STATUS_API_URL, read every poll; None: webhooks only
    stale_after: timedelta = STALE_AFTER
    silence_max: timedelta = SILENCE_MAX

    def fresh(self, feed: Feed, at: datetime) -> bool:
        return at - feed.fetched_at <= self.stale_after

    def problem(
        self, heard: datetime | None, feed: Feed | None, failure: Failure | None, now: datetime
    ) -> str | None:
        """Why the open incidents are not known; None when they are."""
        if self.url is None:
            if heard is None:
                return NO_SOURCE
            if now - heard <= self.silence_max:
                return None
            return (
                f"the status webhooks were last heard {humanize(now - heard)} ago, longer than"
                f" CASCADE_SILENT_SOURCE_MAX_AGE ({humanize(self.silence_max)}) allows: set"
                " STATUS_API_URL (it is read every poll), or check the status page's webhook"
                " to Cascade"
            )
        if feed is not None and self.fresh(feed, now):
            return None
        where = f"the status page ({self.url})"
        if feed is None and failure is None:
            return f"{where} has not been read yet"
        if feed is None:
            assert failure is not None
            return f"{where} cannot be read, for {humanize(now - failure.since)}: {failure.error}"
        why = f": {failure.error}" if failure else ""
        return f"{where} was last read {humanize(now - feed.fetched_at)} ago{why}"

    def freshness(
        self, heard: datetime | None, feed: Feed | None, now: datetime
    ) -> list[Freshness]:
        """When the status page was last read and the status webhooks last heard."""
        found = []
        if self.url is not None:
            last = feed.fetched_at if feed else None
            found.append(judge(SIGNAL, "status page", "poll", last, self.stale_after, now))
        if heard is not None:
            limit = None if self.url is not None else self.silence_max  # the feed vouches
            found.append(judge(SIGNAL, "status webhooks", "webhook", heard, limit, now))
        return found
