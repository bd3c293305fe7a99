"""The incident signal in Redis: status webhooks' news and the status page's last read.

`POST /webhooks/status` records each incident (by id) and component (by name), later news
replacing older. `refresh` (the poller, once a minute) reads `STATUS_API_URL` into the
feed view and names the services whose answer may have changed. `gather` merges both
for a reconcile and never calls out, so `fetch` changes nothing here.
"""

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import redis.asyncio as redis
from pydantic import TypeAdapter, ValidationError
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from app.clock import utcnow
from app.config.durations import humanize
from app.config.services import Service
from app.config.settings import Settings
from app.signals.freshness import Freshness, judge
from app.signals.incidents.client import StatusFeed, StatusFeedError
from app.signals.incidents.facts import Component, Feed, Incident, IncidentsFacts, merge, touches
from app.storage import keys

log = logging.getLogger(__name__)

SOURCE = "status"  # status webhooks are heard (`Store.heard`) under this name
SIGNAL = "incidents"
MISSED_POLLS = 3  # a feed read longer ago than this many poll intervals is unknown
STALE_AFTER = MISSED_POLLS * timedelta(seconds=60)
SILENCE_MAX = timedelta(hours=24)
NO_SOURCE = (
    "no status source: set STATUS_API_URL, or point a Statuspage webhook at"
    " /webhooks/status?token=<CASCADE_WEBHOOK_TOKEN>"
)
Touched = tuple[str, ...]  # the component names some news concerns; empty: every component
T = TypeVar("T")


@dataclass(frozen=True)
class _Entry:
    """One piece of webhook news: an incident or a component, as received."""

    received_at: datetime
    incident: Incident | None = None
    component: Component | None = None

    @property
    def updated_at(self) -> datetime | None:
        news = self.incident or self.component
        return news.updated_at if news else None

    @property
    def active(self) -> bool:
        """An open incident or a troubled component: never dropped before closed news."""
        return bool(self.incident and self.incident.open) or bool(
            self.component and self.component.troubled
        )


@dataclass(frozen=True)
class _Read:
    url: str
    feed: Feed


@dataclass(frozen=True)
class _Failure:
    url: str
    since: datetime  # the first failure after the last good read
    at: datetime
    error: str


_entry, _read, _failure = TypeAdapter(_Entry), TypeAdapter(_Read), TypeAdapter(_Failure)


def affected(services: Iterable[Service], touched: Iterable[Touched]) -> list[str]:
    """The services some news concerns: those watching a component it names, or none."""
    touched = list(touched)
    return sorted(
        s.name for s in services if any(touches(s.incident_systems, names) for names in touched)
    )


class IncidentsView:
    READS = 3  # replies to `send_reads`

    def __init__(
        self,
        client: "redis.Redis",
        feed: StatusFeed | None = None,
        *,
        retry: timedelta = timedelta(seconds=10),
        stale_after: timedelta = STALE_AFTER,
        silence_max: timedelta = SILENCE_MAX,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.redis, self.feed = client, feed
        self.retry, self.stale_after, self.clock = retry, stale_after, clock
        self.silence_max = silence_max

    @classmethod
    def from_settings(cls, settings: Settings, client: "redis.Redis") -> "IncidentsView":
        url = settings.status_api_url
        return cls(
            client,
            StatusFeed(url) if url else None,
            retry=timedelta(seconds=settings.signal_retry_seconds),
            stale_after=MISSED_POLLS * timedelta(seconds=settings.poll_seconds),
            silence_max=settings.silent_source_max_age,
        )

    @staticmethod
    def send_reads(pipe: Pipeline) -> None:
        """Queue the reads `gather` needs, to ride in another round trip (a reconcile's lock)."""
        pipe.hget(keys.HEARD, SOURCE)
        pipe.hvals(keys.STATUS_VIEW)
        pipe.mget(keys.STATUS_FEED, keys.STATUS_FEED_FAILURE)

    async def gather(
        self,
        service: Service,
        now: datetime,
        *,
        fetch: bool = True,
        replies: Sequence[Any] | None = None,
    ) -> IncidentsFacts | None:
        """The status page as Redis knows it; None when no status source applies to `service`.

        `replies` are those to `send_reads` when they were sent already; else they are read.
        """
        if replies is None:
            async with self.redis.pipeline(transaction=False) as pipe:
                self.send_reads(pipe)
                replies = await pipe.execute()
        heard, values, (raw_read, raw_failure) = replies
        if self.feed is None and not service.incident_systems and not heard:
            return None
        entries = _entries(values)
        feed, failure = self._current(raw_read, raw_failure)
        incidents, components = merge(
            (e.incident for e in entries if e.incident),
            (e.component for e in entries if e.component),
            feed,
        )
        heard_at = datetime.fromtimestamp(float(heard), UTC) if heard else None
        problem = self._problem(heard_at, feed, failure, now)
        recheck_at = now + self.retry if problem else None
        return IncidentsFacts(incidents, components, problem, recheck_at)

    async def freshness(self, now: datetime) -> list[Freshness]:
        """When the status page was last read and the status webhooks last heard."""
        heard = await self.redis.hget(keys.HEARD, SOURCE)
        found = []
        if self.feed is not None:
            feed, _failure = await self._feed()
            last = feed.fetched_at if feed else None
            found.append(judge(SIGNAL, "status page", "poll", last, self.stale_after, now))
        if heard is not None:
            at = datetime.fromtimestamp(float(heard), UTC)
            limit = None if self.feed is not None else self.silence_max  # the feed vouches
            found.append(judge(SIGNAL, "status webhooks", "webhook", at, limit, now))
        return found

    async def refresh(self, services: Sequence[Service]) -> list[str]:
        """Read STATUS_API_URL once; the services whose gate answer may have changed."""
        if self.feed is None:
            return []
        now = self.clock()
        before, failure = await self._feed()
        # known at the last read (failures are kept only after the last good one)
        last_try = failure.at if failure else before.fetched_at if before else now
        was_known = before is not None and self._fresh(before, last_try)
        try:
            after = await self.feed.read(now)
        except StatusFeedError as error:
            await self._failed(failure, now, str(error))
            known = before is not None and self._fresh(before, now)
            return [s.name for s in services] if was_known and not known else []
        await self._store(after)
        if failure is not None:
            log.info(
                "status page %s read again after failing since %s", self.feed.url, failure.since
            )
        if before is None or not was_known:
            return [s.name for s in services]
        return affected(services, _changes(before, after))

    async def record_incident(self, incident: Incident, now: datetime) -> list[Touched]:
        """Keep `incident` unless newer news of it is kept; what it touched before and now.

        Empty when nothing changed (a repeat, or older than what is kept).
        """
        stored, old = await self._put(f"incident:{incident.id}", _Entry(now, incident=incident))
        if not stored:
            return []
        before = [old.incident.components] if old and old.incident else []
        return [*before, incident.components]

    async def record_component(self, component: Component, now: datetime) -> list[Touched]:
        """Keep `component`'s status unless newer news of it is kept; its name, or empty."""
        field = f"component:{component.name.casefold()}"
        stored, _old = await self._put(field, _Entry(now, component=component))
        return [(component.name,)] if stored else []

    async def aclose(self) -> None:
        if self.feed is not None:
            await self.feed.aclose()

    # the webhook view ---------------------------------------------------------------------

    async def _put(self, field: str, entry: _Entry) -> tuple[bool, _Entry | None]:
        """Store `entry` unless what is kept is newer or the same; (stored, what it replaced).

        Closed news older than `STATUS_VIEW_KEEP` is dropped on the way, and past
        `STATUS_VIEW_MAX` fields the oldest (closed first) goes too.
        """
        key = keys.STATUS_VIEW
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    stored = {str(k): str(v) for k, v in (await pipe.hgetall(key)).items()}
                    old = _parse(stored.get(field))
                    if old is not None and not _replaces(entry, old):
                        return False, old
                    drop = _overflow(stored, field, entry.received_at)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(key, field, _entry.dump_json(entry).decode())
                    if drop:
                        pipe.hdel(key, *drop)
                    await pipe.execute()
                    return True, old
                except WatchError:
                    continue

    # the feed view ------------------------------------------------------------------------

    async def _feed(self) -> tuple[Feed | None, _Failure | None]:
        """The last good read of this STATUS_API_URL and the failures since, if any."""
        return self._current(*await self.redis.mget(keys.STATUS_FEED, keys.STATUS_FEED_FAILURE))

    def _current(
        self, raw_read: str | bytes | None, raw_failure: str | bytes | None
    ) -> tuple[Feed | None, _Failure | None]:
        """What is stored, if it is about this STATUS_API_URL (the setting may have changed)."""
        url = self.feed.url if self.feed else None
        read = _load(_read, raw_read)
        failure = _load(_failure, raw_failure)
        return (
            read.feed if read and read.url == url else None,
            failure if failure and failure.url == url else None,
        )

    async def _store(self, feed: Feed) -> None:
        assert self.feed is not None
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(
                keys.STATUS_FEED,
                _read.dump_json(_Read(self.feed.url, feed)),
                ex=keys.STATUS_FEED_TTL,
            )
            pipe.delete(keys.STATUS_FEED_FAILURE)
            await pipe.execute()

    async def _failed(self, previous: _Failure | None, now: datetime, error: str) -> None:
        assert self.feed is not None
        if previous is None:
            log.warning("status page %s cannot be read: %s", self.feed.url, error)
        since = previous.since if previous else now
        failure = _Failure(self.feed.url, since, now, error)
        await self.redis.set(
            keys.STATUS_FEED_FAILURE, _failure.dump_json(failure), ex=keys.STATUS_FEED_TTL
        )

    def _fresh(self, feed: Feed, at: datetime) -> bool:
        return at - feed.fetched_at <= self.stale_after

    def _problem(
        self, heard: datetime | None, feed: Feed | None, failure: _Failure | None, now: datetime
    ) -> str | None:
        if self.feed is None:
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
        if feed is not None and self._fresh(feed, now):
            return None
        where = f"the status page ({self.feed.url})"
        if feed is None and failure is None:
            return f"{where} has not been read yet"
        if feed is None:
            assert failure is not None
            return f"{where} cannot be read, for {humanize(now - failure.since)}: {failure.error}"
        why = f": {failure.error}" if failure else ""
        return f"{where} was last read {humanize(now - feed.fetched_at)} ago{why}"


def _changes(before: Feed, after: Feed) -> list[Touched]:
    """What differs between two reads: the components each changed item names."""
    statuses = {(c.name, c.status) for c in before.components}
    statuses ^= {(c.name, c.status) for c in after.components}
    incidents = set(before.incidents) ^ set(after.incidents)
    return [i.components for i in incidents] + [(name,) for name, _ in statuses]


def _replaces(entry: _Entry, old: _Entry) -> bool:
    """Later (or as late but different) news replaces what is kept; a repeat does not."""
    if entry.incident == old.incident and entry.component == old.component:
        return False
    if entry.updated_at is None or old.updated_at is None:
        return True
    return entry.updated_at >= old.updated_at


def _overflow(stored: dict[str, str], writing: str, now: datetime) -> list[str]:
    """The fields to drop: closed news past its keep, then the oldest past the cap."""
    others = [(k, e) for k, v in stored.items() if k != writing and (e := _parse(v)) is not None]
    unreadable = [k for k, v in stored.items() if k != writing and _parse(v) is None]
    expired = {k for k, e in others if not e.active and now - e.received_at > keys.STATUS_VIEW_KEEP}
    kept = sorted(
        ((k, e) for k, e in others if k not in expired),
        key=lambda item: (item[1].active, item[1].received_at),
    )
    excess = max(0, len(kept) + 1 - keys.STATUS_VIEW_MAX)
    if excess:
        log.warning("status view full: dropping the %d oldest items", excess)
    return [*unreadable, *expired, *(k for k, _ in kept[:excess])]


def _entries(values: Iterable[str]) -> list[_Entry]:
    return [e for v in values if (e := _parse(v)) is not None]


def _parse(value: str | None) -> _Entry | None:
    return _load(_entry, value)


def _load(adapter: TypeAdapter[T], value: str | bytes | None) -> T | None:
    """A stored value, or None when absent or written by an incompatible version."""
    if value is None:
        return None
    try:
        return adapter.validate_json(value)
    except ValidationError:
        return None
