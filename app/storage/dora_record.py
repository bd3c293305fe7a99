"""The records delivery metrics are computed from (`app.core.dora`), kept by an audit listener.

The audit streams are capped (10,000 events, 1,000 per service) and mostly hold gate
changes: a service of three stages taking twenty commits a day writes more than 1,000
events in a week, so 30 days of promotions are not in them. What DORA needs is kept here
instead, per (service, stage): a sorted set of the commits promoted there and one of the
commits halted there, each by time, trimmed to `keys.DORA_KEPT` (~40 bytes an entry).
The first stage's arrivals come from its history (`keys.history`, the newest 200 commits).
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import cast

from app.core.dora import Mark, ServiceRecord, StageRecord
from app.storage import keys
from app.storage.audit import Event
from app.storage.client import Client

Scores = list[tuple[bytes | str, float]]
KINDS = {"promotion.succeeded": keys.dora_deployed, "service.halted": keys.dora_halted}


class DoraRecord:
    def __init__(self, client: Client) -> None:
        self.redis = client

    async def on_event(self, event: Event) -> None:
        """Audit listener: note a succeeded promotion or an auto-halt, once per commit
        (the earliest time kept), and drop what is older than any window asked."""
        key = KINDS.get(event.kind)
        if key is None or not (event.service and event.target and event.commit):
            return
        name = key(event.service, event.target)
        at = event.at.timestamp()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(name, {event.commit: at}, lt=True)
            pipe.zremrangebyscore(name, "-inf", at - keys.DORA_KEPT.total_seconds())
            pipe.expire(name, keys.DORA_KEPT)
            await pipe.execute()

    async def read(
        self, wanted: Mapping[str, Sequence[str]], since: datetime
    ) -> dict[str, ServiceRecord]:
        """Each service's marks since `since` (`wanted`: service -> its stages in order), and
        when their commits first ran on its first stage: two round trips for them all, so a
        page of a thousand services costs no more trips than one."""
        start = since.timestamp()
        async with self.redis.pipeline(transaction=False) as pipe:
            for service, stages in wanted.items():
                for app in stages:
                    key = keys.history if app == stages[0] else keys.dora_deployed
                    pipe.zrangebyscore(key(service, app), start, "+inf", withscores=True)
                    pipe.zrangebyscore(
                        keys.dora_halted(service, app), start, "+inf", withscores=True
                    )
            rows = iter(cast(list[Scores], await pipe.execute()))
        marked = {
            service: [(app, _marks(next(rows)), _marks(next(rows))) for app in stages]
            for service, stages in wanted.items()
        }
        arrived = await self._arrived(marked)
        return {
            service: ServiceRecord(service, tuple(StageRecord(*m) for m in marks), arrived[service])
            for service, marks in marked.items()
        }

    async def _arrived(
        self, marked: Mapping[str, Sequence[tuple[str, tuple[Mark, ...], tuple[Mark, ...]]]]
    ) -> dict[str, dict[str, datetime]]:
        """When the commits promoted in each service first ran on its first stage."""
        asked = {
            service: sorted({m.commit for _app, deployed, _halted in marks[1:] for m in deployed})
            for service, marks in marked.items()
        }
        found: dict[str, dict[str, datetime]] = {service: {} for service in marked}
        if not any(asked.values()):
            return found
        async with self.redis.pipeline(transaction=False) as pipe:
            for service, commits in asked.items():
                if commits:
                    pipe.zmscore(keys.history(service, marked[service][0][0]), commits)
            replies = iter(await pipe.execute())
        for service, commits in asked.items():
            if commits:
                scores = next(replies)
                found[service] = {
                    c: _moment(s) for c, s in zip(commits, scores, strict=True) if s is not None
                }
        return found


def _marks(row: Scores) -> tuple[Mark, ...]:
    return tuple(Mark(_text(member), _moment(score)) for member, score in row)


def _moment(score: float) -> datetime:
    return datetime.fromtimestamp(float(score), UTC)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
