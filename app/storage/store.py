"""The Redis adapter for the view of each service, in one object: stages and builds
(`stages.py`), histories (`histories.py`), pauses and suspects (`pauses.py`), and here the
delivery dedup, the topology cache and when each sender was last heard.

Promotion records live in `ledger.py` and locks in `locks.py`; every key comes
from `keys.py`.
"""

from datetime import UTC, datetime, timedelta

from app.core.models import Artifact, StageView
from app.storage import keys
from app.storage.artifacts import ArtifactStore
from app.storage.client import Client
from app.storage.histories import ADD_SCRIPT, HISTORY_SCRIPT, Histories, HistoryStore
from app.storage.kept import ARTIFACTS_KEPT, STAGES_KEPT, Kept, text
from app.storage.pauses import HALT_SCRIPT, PauseStore
from app.storage.stages import FOLD_SCRIPT, Folded, ServiceView, StageStore

__all__ = ["Folded", "Histories", "Kept", "ServiceView", "Store"]

HEARD_EVERY = 1.0  # seconds: a busy sender is noted in Redis at most this often per process


class Store(StageStore, ArtifactStore, HistoryStore, PauseStore):
    """Every part's methods on one Redis client, with what this process keeps."""

    def __init__(self, client: Client) -> None:
        self.redis = client
        self._history = client.register_script(HISTORY_SCRIPT)
        self._add = client.register_script(ADD_SCRIPT)
        self._artifacts = Kept[Artifact, str](ARTIFACTS_KEPT)  # build -> its commit
        # stage key -> its JSON ("" none) as this process last saw it, and that JSON parsed
        self._stages_seen = Kept[str, tuple[str, StageView]](STAGES_KEPT)
        self._fold = client.register_script(FOLD_SCRIPT)
        self._halt = client.register_script(HALT_SCRIPT)
        self._heard: dict[str, datetime] = {}  # source -> when this process last noted it
        self._folds: dict[str, int] = {}  # service -> releases this process folded in

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

    async def set_topology(self, service: str, value: str) -> None:
        await self.redis.set(keys.topology(service), value)

    async def topology(self, service: str) -> str | None:
        return text(await self.redis.get(keys.topology(service)))

    async def forget_topology(self, service: str) -> None:
        """The services file changed the service: read its pipeline again."""
        await self.redis.delete(keys.topology(service))

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
