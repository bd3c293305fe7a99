"""The Redis adapter for the view of each service: stages, history, pauses, dedup, slugs.

Promotion records live in `ledger.py` and locks in `locks.py`; every key comes
from `keys.py`.
"""

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as redis
from pydantic import TypeAdapter
from redis.exceptions import WatchError

from app import keys
from app.models import Pause, Release, ReleaseStatus, StageView
from app.view import arrival, fold_release

_stage = TypeAdapter(StageView)
_pause = TypeAdapter(Pause)


HEARD_EVERY = 1.0  # seconds: a busy sender is noted in Redis at most this often per process


class Store:
    def __init__(self, client: "redis.Redis") -> None:
        self.redis = client
        self._heard: dict[str, datetime] = {}  # source -> when this process last noted it

    # stages -------------------------------------------------------------

    async def stages(self, service: str, apps: Sequence[str]) -> tuple[StageView, ...]:
        if not apps:
            return ()
        raw = await self.redis.mget([keys.stage(service, app) for app in apps])
        return tuple(
            _stage.validate_json(value) if value else StageView(app)
            for app, value in zip(apps, raw, strict=True)
        )

    async def put_release(
        self, service: str, release: Release, received_at: datetime | None = None
    ) -> bool:
        """Fold `release` into its stage; True when the stage changed.

        The slug's commit is cached in the same transaction (slugs never change).
        """
        key = keys.stage(service, release.app)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    before = _stage.validate_json(raw) if raw else StageView(release.app)
                    after = fold_release(before, release)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if after != before:
                        pipe.set(key, _stage.dump_json(after))
                    if release.status is ReleaseStatus.SUCCEEDED and release.commit:
                        at = arrival(release, received_at)
                        self._add_history(pipe, service, release.app, release.commit, at)
                    if release.slug_id and release.commit:
                        pipe.set(keys.slug(release.slug_id), release.commit, ex=keys.SLUG_TTL)
                    await pipe.execute()
                    return after != before
                except WatchError:
                    continue

    # history --------------------------------------------------------------

    async def history(self, service: str, apps: Iterable[str]) -> dict[str, dict[str, datetime]]:
        apps = list(apps)
        async with self.redis.pipeline(transaction=False) as pipe:
            for app in apps:
                pipe.zrange(keys.history(service, app), 0, -1, withscores=True)
            rows = await pipe.execute()
        return {
            app: {commit: datetime.fromtimestamp(score, UTC) for commit, score in row}
            for app, row in zip(apps, rows, strict=True)
        }

    async def add_history(self, service: str, app: str, entries: dict[str, datetime]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for commit, at in entries.items():
                self._add_history(pipe, service, app, commit, at)
            pipe.set(keys.history_loaded(service, app), "1")
            await pipe.execute()

    async def history_loaded(self, service: str, apps: Sequence[str]) -> list[bool]:
        raw = await self.redis.mget([keys.history_loaded(service, app) for app in apps])
        return [value is not None for value in raw]

    @staticmethod
    def _add_history(pipe: Any, service: str, app: str, commit: str, at: datetime) -> None:
        """First arrival wins (NX); only the newest commits are kept."""
        key = keys.history(service, app)
        pipe.zadd(key, {commit: at.timestamp()}, nx=True)
        pipe.zremrangebyrank(key, 0, -keys.HISTORY_MAXLEN - 1)

    # pauses ---------------------------------------------------------------

    async def pause(self, service: str | None) -> Pause | None:
        raw = await self.redis.get(_pause_key(service))
        return _pause.validate_json(raw) if raw else None

    async def pauses(self, service: str) -> tuple[Pause | None, Pause | None]:
        """The global pause and the service's, in one round trip (a pipeline, not MGET:
        the two keys live on different cluster slots)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.GLOBAL_PAUSE)
            pipe.get(keys.pause(service))
            raw = await pipe.execute()
        found = tuple(_pause.validate_json(value) if value else None for value in raw)
        return found[0], found[1]

    async def set_pause(self, pause: Pause) -> None:
        """Store the pause; Redis forgets it by itself at `until`."""
        key, value = _pause_key(pause.service), _pause.dump_json(pause)
        if pause.until is None:
            await self.redis.set(key, value)
        else:
            await self.redis.set(key, value, pxat=int(pause.until.timestamp() * 1000))

    async def lift_pause(self, service: str | None) -> Pause | None:
        raw = await self.redis.getdel(_pause_key(service))
        return _pause.validate_json(raw) if raw else None

    # gate states, to audit transitions only ------------------------------

    async def gate_states(self, service: str) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.gates(service))
        return {_text(k) or "": _text(v) or "" for k, v in raw.items()}

    async def set_gate_states(
        self, service: str, states: dict[str, str], gone: Sequence[str]
    ) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            if states:
                pipe.hset(keys.gates(service), mapping=states)  # type: ignore[arg-type]
            if gone:
                pipe.hdel(keys.gates(service), *gone)
            await pipe.execute()

    # dedup and caches ----------------------------------------------------

    async def first_sighting(self, sender: str, *ids: str) -> bool:
        """Remember delivery ids; True unless any of them was seen before."""
        ttl = int(keys.DEDUP_TTL.total_seconds())
        async with self.redis.pipeline(transaction=False) as pipe:
            for delivery in ids:
                pipe.set(keys.dedup(sender, delivery), "1", nx=True, ex=ttl)
            results = await pipe.execute()
        return all(results)

    async def forget_sighting(self, sender: str, *ids: str) -> None:
        await self.redis.delete(*(keys.dedup(sender, delivery) for delivery in ids))

    async def get(self, slug_id: str) -> str | None:
        """SlugCache: slugs are immutable; a commit is kept for `SLUG_TTL`, then read again."""
        return _text(await self.redis.get(keys.slug(slug_id)))

    async def put(self, slug_id: str, commit: str) -> None:
        await self.redis.set(keys.slug(slug_id), commit, ex=keys.SLUG_TTL)

    async def mark_resync(self, service: str, every_seconds: float) -> bool:
        """True for the one process that should re-read the pipeline now."""
        ok = await self.redis.set(
            keys.resynced(service), "1", nx=True, px=int(every_seconds * 1000)
        )
        return bool(ok)

    async def set_topology(self, service: str, value: str) -> None:
        await self.redis.set(keys.topology(service), value)

    async def topology(self, service: str) -> str | None:
        return _text(await self.redis.get(keys.topology(service)))

    async def forget_topology(self, service: str) -> None:
        """The services file changed the service: read its pipeline again."""
        await self.redis.delete(keys.topology(service))

    # signal sources ------------------------------------------------------

    async def heard(self, source: str, at: datetime) -> None:
        """An authentic delivery from `source` arrived (any process): for `/metrics`.

        Noted at most once a second per source and process: the gauge counts seconds,
        and a round trip per delivery was a tenth of the webhook path's cost (BENCHMARKS.md).
        """
        last = self._heard.get(source)
        if last is not None and timedelta(0) <= at - last < timedelta(seconds=HEARD_EVERY):
            return
        self._heard[source] = at
        await self.redis.hset(keys.HEARD, source, str(at.timestamp()))

    async def last_heard(self) -> dict[str, datetime]:
        raw = await self.redis.hgetall(keys.HEARD)
        return {str(k): datetime.fromtimestamp(float(v), UTC) for k, v in raw.items()}


def _pause_key(service: str | None) -> str:
    return keys.pause(service) if service else keys.GLOBAL_PAUSE


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
