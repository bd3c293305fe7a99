"""Pauses (a service's or the global one), suspect commits and the auto-halt's once-marks in
Redis. A part of `app.storage.store.Store`.
"""

from pydantic import TypeAdapter
from redis.commands.core import AsyncScript

from app.core.models import Pause
from app.storage import keys
from app.storage.client import Client

_pause = TypeAdapter(Pause)


# KEYS: the halt's once-mark, the service's suspects, its pause. ARGV: the mark's lifetime
# (seconds), the commit, why, the pause's JSON. All three or nothing, and only the first time.
HALT_SCRIPT = """
if not redis.call('set', KEYS[1], ARGV[3], 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('hset', KEYS[2], ARGV[2], ARGV[3])
redis.call('set', KEYS[3], ARGV[4])
return 1
"""


class PauseStore:
    redis: Client
    _halt: AsyncScript

    async def pause(self, service: str | None) -> Pause | None:
        raw = await self.redis.get(_pause_key(service))
        return _pause.validate_json(raw) if raw else None

    async def set_pause(self, pause: Pause) -> None:
        """Store the pause. A timed one ends at `until` by Cascade's clock (`Pause.active`, read
        by the allow gate); Redis forgets it a day later, as housekeeping, never deciding."""
        key, value = _pause_key(pause.service), _pause.dump_json(pause)
        if pause.until is None:
            await self.redis.set(key, value)
        else:
            gone = pause.until + keys.PAUSE_KEPT_AFTER
            await self.redis.set(key, value, pxat=int(gone.timestamp() * 1000))

    async def lift_pause(self, service: str | None) -> Pause | None:
        raw = await self.redis.getdel(_pause_key(service))
        return _pause.validate_json(raw) if raw else None

    # suspect commits (`app.core.halt`) -------------------------------------------

    async def halt(self, target: str, commit: str, pause: Pause) -> bool:
        """Mark `commit` suspect and pause its service, once per (service, target, commit)
        across processes and repeated webhooks, in one step; True for the caller that did.

        Once only: an operator who lifted the pause is not paused again by the same news."""
        assert pause.service is not None
        service = pause.service
        reply = await self._halt(
            keys=[
                keys.halted(service, target, commit),
                keys.suspects(service),
                keys.pause(service),
            ],
            args=[
                int(keys.HALT_TTL.total_seconds()),
                commit,
                pause.reason,
                _pause.dump_json(pause),
            ],
        )
        return bool(reply)

    async def claim_rollback(self, service: str, target: str, commit: str) -> bool:
        """True for the one caller that rolls `target` back for the halt of `commit`."""
        key, ttl = keys.rolled_back(service, target, commit), keys.HALT_TTL
        return bool(await self.redis.set(key, "1", nx=True, ex=ttl))

    async def add_suspect(self, service: str, commit: str, reason: str) -> None:
        await self.redis.hset(keys.suspects(service), commit, reason)

    async def clear_suspect(self, service: str, commit: str) -> bool:
        """Forget that `commit` is suspect; False when it was not."""
        return bool(await self.redis.hdel(keys.suspects(service), commit))


def _pause_key(service: str | None) -> str:
    return keys.pause(service) if service else keys.GLOBAL_PAUSE
