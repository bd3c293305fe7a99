"""One reconcile of a service at a time, across every process sharing Redis.

A lock is a key holding a random token, with an expiry so a crashed holder
cannot block the service for long; only the owner's token releases it. A
process marks the service dirty before it tries the lock, and a holder runs
again when it finds the mark after releasing, so no news is lost between them.
"""

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as redis

from app import keys

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class Locks:
    def __init__(self, client: "redis.Redis") -> None:
        self.redis = client
        self._release = client.register_script(_RELEASE)

    @asynccontextmanager
    async def hold(self, service: str) -> AsyncIterator[bool]:
        """Yield True while holding the service's lock, False if another holds it."""
        token = secrets.token_hex(16)
        key = keys.lock(service)
        ttl = int(keys.LOCK_TTL.total_seconds() * 1000)
        # Dirty first: a holder that releases after this line will see it and run again.
        await self.redis.set(keys.dirty(service), "1")
        if not await self.redis.set(key, token, nx=True, px=ttl):
            yield False
            return
        await self.redis.delete(keys.dirty(service))  # this run will read all news so far
        try:
            yield True
        finally:
            await self._release(keys=[key], args=[token])

    async def take_dirty(self, service: str) -> bool:
        """True when someone asked for a reconcile while the lock was held."""
        return bool(await self.redis.getdel(keys.dirty(service)))
