"""The records delivery metrics are computed from (`app.dora`), kept by an audit listener.

The audit streams are capped (10,000 events, 1,000 per service) and mostly hold gate
changes: a service of three stages taking twenty commits a day writes more than 1,000
events in a week, so 30 days of promotions are not in them. What DORA needs is kept here
instead, per (service, stage): a sorted set of the commits promoted there and one of the
commits halted there, each by time, trimmed to `keys.DORA_KEPT` (~40 bytes an entry).
The first stage's arrivals come from its history (`keys.history`, the newest 200 commits).
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

import redis.asyncio as redis

from app import keys
from app.audit import Event
from app.dora import Mark, ServiceRecord, StageRecord

Scores = list[tuple[bytes | str, float]]
KINDS = {"promotion.succeeded": keys.dora_deployed, "service.halted": keys.dora_halted}


class DoraRecord:
    def __init__(self, client: "redis.Redis") -> None:
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

    async def read(self, service: str, stages: Sequence[str], since: datetime) -> ServiceRecord:
        """The service's marks since `since`, and when their commits first ran on the first
        stage: two round trips."""
        if not stages:
            return ServiceRecord(service, (), {})
        first, later = stages[0], stages[1:]
        start = since.timestamp()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(keys.history(service, first), start, "+inf", withscores=True)
            for app in later:
                pipe.zrangebyscore(keys.dora_deployed(service, app), start, "+inf", withscores=True)
            for app in stages:
                pipe.zrangebyscore(keys.dora_halted(service, app), start, "+inf", withscores=True)
            rows = cast(list[Scores], await pipe.execute())
        deployed = [_marks(row) for row in rows[: len(stages)]]
        halted = [_marks(row) for row in rows[len(stages) :]]
        commits = sorted({m.commit for marks in deployed[1:] for m in marks})
        arrived = await self._arrived(service, first, commits)
        records = zip(stages, deployed, halted, strict=True)
        return ServiceRecord(service, tuple(StageRecord(*r) for r in records), arrived)

    async def _arrived(self, service: str, app: str, commits: list[str]) -> dict[str, datetime]:
        if not commits:
            return {}
        scores = await self.redis.zmscore(keys.history(service, app), commits)
        return {c: _moment(s) for c, s in zip(commits, scores, strict=True) if s is not None}


def _marks(row: Scores) -> tuple[Mark, ...]:
    return tuple(Mark(_text(member), _moment(score)) for member, score in row)


def _moment(score: float) -> datetime:
    return datetime.fromtimestamp(float(score), UTC)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
