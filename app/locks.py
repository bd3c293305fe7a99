"""One reconcile of a service at a time, across every process sharing Redis.

A lock is a key holding a random token, with a short expiry that its holder
keeps renewing, so a crashed holder blocks the service for at most `LOCK_TTL`;
only the owner's token renews or releases it. A process marks the service
dirty before it tries the lock, and a holder runs again when it finds the mark
after releasing, so no news is lost between them.
"""

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis

from app import keys

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_ACQUIRE = """
redis.call('set', KEYS[2], '1')
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('del', KEYS[2])
  return 1
end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


class Locks:
    def __init__(self, client: "redis.Redis") -> None:
        self.redis = client
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)
        self.ttl_ms = int(keys.LOCK_TTL.total_seconds() * 1000)

    @asynccontextmanager
    async def hold(self, service: str) -> AsyncIterator[bool]:
        """Yield True while holding the service's lock, False if another holds it."""
        token = secrets.token_hex(16)
        key = keys.lock(service)
        # Dirty first: a holder that releases after this will see it and run again. Taking
        # the lock clears the mark: this run will read all news so far. One script, so one
        # round trip instead of three (BENCHMARKS.md).
        if not await self._acquire(keys=[key, keys.dirty(service)], args=[token, self.ttl_ms]):
            yield False
            return
        renewing = asyncio.create_task(self._keep(key, token))
        try:
            yield True
        finally:
            renewing.cancel()
            await asyncio.wait({renewing})  # unlike awaiting it, keeps a cancel aimed at us
            await self._release(keys=[key], args=[token])

    async def busy_for(self, service: str) -> float:
        """Seconds until another holder's lock expires, if it is never released."""
        remaining = await self.redis.pttl(keys.lock(service))
        return max(0, int(remaining)) / 1000

    async def take_dirty(self, service: str) -> bool:
        """True when someone asked for a reconcile while the lock was held."""
        return bool(await self.redis.getdel(keys.dirty(service)))

    async def _keep(self, key: str, token: str) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            await self._renew(keys=[key], args=[token, self.ttl_ms])
