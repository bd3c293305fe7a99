"""Promotion records: one per (service, target, commit), created only if absent.

The record is what makes a promotion happen at most once across processes and
restarts: it is claimed (SET NX) before anything is sent to Heroku, and settled
records stay for `keys.RECORD_TTL` so the same commit is never sent twice.
"""

from collections.abc import Iterable

import redis.asyncio as redis
from pydantic import TypeAdapter

from app import keys
from app.models import PromotionRecord

_record = TypeAdapter(PromotionRecord)

# Create the record and list it as unsettled in one step: a crash cannot leave one unlisted.
_CLAIM = """
if redis.call('set', KEYS[1], ARGV[1], 'NX') then
  redis.call('sadd', KEYS[2], KEYS[1])
  return 1
end
return 0
"""


# Change or drop a record only if it is still exactly what the caller last saw: of a claimer
# about to send and a follower taking the unsent claim back, exactly one wins.
_SWAP = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('del', KEYS[1])
  redis.call('srem', KEYS[2], KEYS[1])
else
  redis.call('set', KEYS[1], ARGV[2])
end
return 1
"""


class Ledger:
    def __init__(self, client: "redis.Redis") -> None:
        self.redis = client
        self._claim = client.register_script(_CLAIM)
        self._swap = client.register_script(_SWAP)

    async def claim(self, record: PromotionRecord) -> bool:
        """True for the one caller that may promote this commit to this target."""
        key = keys.promotion(record.service, record.target, record.commit)
        value = _record.dump_json(record).decode()
        return bool(await self._claim(keys=[key, keys.promotions(record.service)], args=[value]))

    async def save(self, record: PromotionRecord) -> None:
        key = keys.promotion(record.service, record.target, record.commit)
        async with self.redis.pipeline(transaction=True) as pipe:
            if record.state.settled:
                pipe.set(key, _record.dump_json(record), ex=keys.RECORD_TTL)
                pipe.srem(keys.promotions(record.service), key)
            else:
                pipe.set(key, _record.dump_json(record))
            await pipe.execute()

    async def swap(self, seen: PromotionRecord, new: PromotionRecord | None) -> bool:
        """Replace the unsettled record `seen` with `new` (None: drop it), only if unchanged."""
        key = keys.promotion(seen.service, seen.target, seen.commit)
        values = [_record.dump_json(seen).decode(), _record.dump_json(new).decode() if new else ""]
        return bool(await self._swap(keys=[key, keys.promotions(seen.service)], args=values))

    async def drop(self, record: PromotionRecord) -> None:
        """Forget a claim that never reached Heroku, so the pair is judged afresh."""
        key = keys.promotion(record.service, record.target, record.commit)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.srem(keys.promotions(record.service), key)
            await pipe.execute()

    async def find(
        self, service: str, pairs: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], PromotionRecord]:
        """The records of the given (target, commit) pairs that exist."""
        wanted = list(pairs)
        if not wanted:
            return {}
        raw = await self.redis.mget([keys.promotion(service, t, c) for t, c in wanted])
        return {
            pair: _record.validate_json(value)
            for pair, value in zip(wanted, raw, strict=True)
            if value
        }

    async def unsettled(self, service: str) -> list[PromotionRecord]:
        """Records claimed or promoting: to be followed or resumed."""
        members = sorted(await self.redis.smembers(keys.promotions(service)))
        if not members:
            return []
        raw = await self.redis.mget(members)
        gone = [key for key, value in zip(members, raw, strict=True) if not value]
        if gone:
            await self.redis.srem(keys.promotions(service), *gone)
        return [_record.validate_json(value) for value in raw if value]
