"""The incident signal in Redis: status webhooks' news and the status page's last read.

`POST /webhooks/status` records each incident (by id) and component (by name), later news
replacing older (`stored.replaces`). `refresh` (the poller, once a minute) reads
`STATUS_API_URL` into the feed view and names the services whose answer may have changed.
`gather` merges both for a reconcile and never calls out, so `fetch` changes nothing here;
`problems.Expected` says when what it found cannot be trusted.
"""

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from redis.exceptions import WatchError

from app.clock import utcnow
from app.config.services import Service
from app.config.settings import Settings
from app.signals.freshness import Freshness
from app.signals.incidents import stored
from app.signals.incidents.client import StatusFeed
from app.signals.incidents.facts import Component, Feed, Incident, IncidentsFacts, merge, touches
from app.signals.incidents.pages import StatusFeedError
from app.signals.incidents.problems import MISSED_POLLS, SILENCE_MAX, STALE_AFTER, Expected
from app.signals.incidents.stored import Entry, Failure, FeedRead, Touched
from app.storage import keys
from app.storage.batch import Batch, Reply
from app.storage.client import Client, Pipe, mget

log = logging.getLogger(__name__)

SOURCE = "status"  # status webhooks are heard (`Store.heard`) under this name


def affected(services: Iterable[Service], touched: Iterable[Touched]) -> list[str]:
    """The services some news concerns: those watching a component it names, or none."""
    touched = list(touched)
    return sorted(
        s.name for s in services if any(touches(s.incident_systems, names) for names in touched)
    )


class Kept(NamedTuple):
    """What Redis keeps of the signal, as `gather` reads it: in one round trip."""

    heard: Any  # when status webhooks were last heard
    values: list[Any]  # the webhook view's entries
    raw_read: Any  # the last good read of the status page
    raw_failure: Any  # the failures to read it since


class IncidentsView:
    def __init__(
        self,
        client: Client,
        feed: StatusFeed | None = None,
        *,
        retry: timedelta = timedelta(seconds=10),
        stale_after: timedelta = STALE_AFTER,
        silence_max: timedelta = SILENCE_MAX,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.redis, self.feed = client, feed
        self.retry, self.clock = retry, clock
        self.expected = Expected(feed.url if feed else None, stale_after, silence_max)

    @classmethod
    def from_settings(cls, settings: Settings, client: Client) -> "IncidentsView":
        url = settings.status_api_url
        return cls(
            client,
            StatusFeed(url) if url else None,
            retry=timedelta(seconds=settings.signal_retry_seconds),
            stale_after=MISSED_POLLS * timedelta(seconds=settings.poll_seconds),
            silence_max=settings.silent_source_max_age,
        )

    @staticmethod
    def send_reads(batch: Batch) -> Reply[Kept]:
        """What `gather` reads, in `batch`: to ride in another round trip (a reconcile's lock)."""
        return batch.add(_queue_reads, _kept)

    async def gather(
        self,
        service: Service,
        now: datetime,
        *,
        fetch: bool = True,
        kept: Kept | None = None,
    ) -> IncidentsFacts | None:
        """The status page as Redis knows it; None when no status source applies to `service`.

        `kept`: what `send_reads` read, when it was sent already; else it is read here.
        """
        if kept is None:
            batch = Batch()
            read = self.send_reads(batch)
            await batch.send(self.redis)
            kept = read.value
        heard, values, raw_read, raw_failure = kept
        if self.feed is None and not service.incident_systems and not heard:
            return None
        entries = stored.entries(values)
        feed, failure = self._current(raw_read, raw_failure)
        incidents, components = merge(
            (e.incident for e in entries if e.incident),
            (e.component for e in entries if e.component),
            feed,
        )
        problem = self.expected.problem(_heard_at(heard), feed, failure, now)
        recheck_at = now + self.retry if problem else None
        return IncidentsFacts(incidents, components, problem, recheck_at)

    async def freshness(self, now: datetime) -> list[Freshness]:
        """When the status page was last read and the status webhooks last heard."""
        heard = await self.redis.hget(keys.HEARD, SOURCE)
        feed = (await self._feed())[0] if self.feed is not None else None
        return self.expected.freshness(_heard_at(heard), feed, now)

    async def refresh(self, services: Sequence[Service]) -> list[str]:
        """Read STATUS_API_URL once; the services whose gate answer may have changed."""
        if self.feed is None:
            return []
        now = self.clock()
        before, failure = await self._feed()
        # known at the last read (failures are kept only after the last good one)
        last_try = failure.at if failure else before.fetched_at if before else now
        was_known = before is not None and self.expected.fresh(before, last_try)
        try:
            after = await self.feed.read(now)
        except StatusFeedError as error:
            await self._failed(failure, now, str(error))
            known = before is not None and self.expected.fresh(before, now)
            return [s.name for s in services] if was_known and not known else []
        await self._store(after)
        if failure is not None:
            log.info(
                "status page %s read again after failing since %s", self.feed.url, failure.since
            )
        if before is None or not was_known:
            return [s.name for s in services]
        return affected(services, stored.changes(before, after))

    async def record_incident(self, incident: Incident, now: datetime) -> list[Touched]:
        """Keep `incident` unless newer news of it is kept; what it touched before and now.

        Empty when nothing changed (a repeat, or older than what is kept).
        """
        kept, old = await self._put(f"incident:{incident.id}", Entry(now, incident=incident))
        if not kept:
            return []
        before = [old.incident.components] if old and old.incident else []
        return [*before, incident.components]

    async def record_component(self, component: Component, now: datetime) -> list[Touched]:
        """Keep `component`'s status unless newer news of it is kept; its name, or empty."""
        field = f"component:{component.name.casefold()}"
        kept, _old = await self._put(field, Entry(now, component=component))
        return [(component.name,)] if kept else []

    async def aclose(self) -> None:
        if self.feed is not None:
            await self.feed.aclose()

    # the webhook view ---------------------------------------------------------------------

    async def _put(self, field: str, entry: Entry) -> tuple[bool, Entry | None]:
        """Store `entry` unless what is kept is newer or the same; (stored, what it replaced).

        Closed news older than `STATUS_VIEW_KEEP` is dropped on the way, and past
        `STATUS_VIEW_MAX` fields the oldest (closed first) goes too.
        """
        key = keys.STATUS_VIEW
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    kept = {str(k): str(v) for k, v in (await pipe.hgetall(key)).items()}
                    old = stored.parse(kept.get(field))
                    if old is not None and not stored.replaces(entry, old):
                        return False, old
                    drop = stored.overflow(kept, field, entry.received_at)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(key, field, stored.entry.dump_json(entry).decode())
                    if drop:
                        pipe.hdel(key, *drop)
                    await pipe.execute()
                    return True, old
                except WatchError:
                    continue

    # the feed view ------------------------------------------------------------------------

    async def _feed(self) -> tuple[Feed | None, Failure | None]:
        """The last good read of this STATUS_API_URL and the failures since, if any."""
        return self._current(*await self.redis.mget(keys.STATUS_FEED, keys.STATUS_FEED_FAILURE))

    def _current(
        self, raw_read: str | bytes | None, raw_failure: str | bytes | None
    ) -> tuple[Feed | None, Failure | None]:
        """What is stored, if it is about this STATUS_API_URL (the setting may have changed)."""
        url = self.expected.url
        read = stored.load(stored.feed_read, raw_read)
        failure = stored.load(stored.failure, raw_failure)
        return (
            read.feed if read and read.url == url else None,
            failure if failure and failure.url == url else None,
        )

    async def _store(self, feed: Feed) -> None:
        assert self.feed is not None
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(
                keys.STATUS_FEED,
                stored.feed_read.dump_json(FeedRead(self.feed.url, feed)),
                ex=keys.STATUS_FEED_TTL,
            )
            pipe.delete(keys.STATUS_FEED_FAILURE)
            await pipe.execute()

    async def _failed(self, previous: Failure | None, now: datetime, error: str) -> None:
        assert self.feed is not None
        if previous is None:
            log.warning("status page %s cannot be read: %s", self.feed.url, error)
        since = previous.since if previous else now
        failure = Failure(self.feed.url, since, now, error)
        await self.redis.set(
            keys.STATUS_FEED_FAILURE, stored.failure.dump_json(failure), ex=keys.STATUS_FEED_TTL
        )


def _queue_reads(pipe: Pipe) -> None:
    pipe.hget(keys.HEARD, SOURCE)
    pipe.hvals(keys.STATUS_VIEW)
    mget(pipe, [keys.STATUS_FEED, keys.STATUS_FEED_FAILURE])


def _kept(replies: list[Any]) -> Kept:
    heard, values, (raw_read, raw_failure) = replies
    return Kept(heard, values, raw_read, raw_failure)


def _heard_at(heard: str | bytes | None) -> datetime | None:
    return datetime.fromtimestamp(float(heard), UTC) if heard else None
