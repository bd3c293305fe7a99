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
from dataclasses import dataclass, field

from app.storage import keys
from app.storage.batch import Batch
from app.storage.client import Client

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1]) end
return redis.call('del', KEYS[2])
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


@dataclass
class Lease:
    """A try at a service's lock: `held` at once, `news` once released."""

    held: bool
    news: bool = False  # someone asked for a reconcile while it was held
    # sent in the round trip that releases it, after the release (the live feed's news)
    released: Batch = field(default_factory=Batch)


class Locks:
    def __init__(self, client: Client) -> None:
        self.redis = client
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)
        self.ttl_ms = int(keys.LOCK_TTL.total_seconds() * 1000)

    @asynccontextmanager
    async def hold(self, service: str, batch: Batch | None = None) -> AsyncIterator[Lease]:
        """Hold the service's lock if no one else does; on release, learn of news meanwhile.

        `batch` is sent in the same round trip as taking the lock, after it: when the lock is
        held, its replies (what a reconcile reads first, `Snapshots.send_reads`) see everything
        written before the lock was taken; when not, they are not to be read.
        """
        token = secrets.token_hex(16)
        key, dirty = keys.lock(service), keys.dirty(service)
        # Dirty first: a holder that releases after this will see it and run again. Taking
        # the lock clears the mark: this run will read all news so far. One script each way,
        # so one round trip to take and one to release and take the mark (BENCHMARKS.md).
        args = [token, self.ttl_ms]
        taken = await (batch or Batch()).send_after(self.redis, self._acquire, [key, dirty], args)
        if not taken:
            yield Lease(held=False)
            return
        lease = Lease(held=True)
        renewing = asyncio.create_task(self._keep(key, token))
        try:
            yield lease
        finally:
            renewing.cancel()
            await asyncio.wait({renewing})  # unlike awaiting it, keeps a cancel aimed at us
            release = [key, dirty], [token]
            if lease.released:
                news = await lease.released.send_after(self.redis, self._release, *release)
            else:
                news = await self._release(*release)
            lease.news = bool(news)

    async def busy_for(self, service: str) -> float:
        """Seconds until another holder's lock expires, if it is never released."""
        remaining = await self.redis.pttl(keys.lock(service))
        return max(0, int(remaining)) / 1000

    async def _keep(self, key: str, token: str) -> None:
        while True:
            await asyncio.sleep(self.ttl_ms / 3000)
            await self._renew(keys=[key], args=[token, self.ttl_ms])
