"""Noticing that Redis lost Cascade's data while it ran: a failover to a lagging replica, a
crash inside the one-second fsync window, a flush.

A marker (`keys.EPOCH`) is written on a Redis without one, and each process remembers the
value it found or wrote. Found gone, or changed to a value no operator's recovery wrote
after it, the data was lost: the process sets `keys.DATA_LOST`, which every process honours,
and promotes nothing until an operator confirms with `POST /recover` (or `cascade recover`),
which writes a new marker. What a process keeps in memory is dropped either way.

A lagging replica keeps the marker, so a count of guarding writes (`keys.CLAIMS`: promotion
claims and pauses) goes with it: each adds one, and each process remembers the highest count
it saw. Found lower, writes this process saw were lost. Only the writer may have seen the
count, so a claim is sent and a pause acknowledged only once a replica has it too, where the
server has replicas (`Epoch.durable`).
"""

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError, ResponseError

from app.storage import keys

log = logging.getLogger(__name__)

NEW, RECOVERED = "new", "recovered"  # the marker's kinds: written on an empty Redis, by recover
CHECK_EVERY = 2.0  # seconds between the watch's looks (and a look before every promotion)
WAIT_TIMEOUT_MS = 2000  # an everysec fsync comes within a second, a replica's copy sooner
HOW = "confirm with POST /recover (admin token) or `cascade recover` once pauses are back"


def marker(kind: str, ms: int) -> str:
    return f"{kind}:{ms}:{secrets.token_hex(8)}"


def _parts(value: str) -> tuple[str, int]:
    kind, ms, _ = [*value.split(":"), "", "", ""][:3]
    return kind, int(ms) if ms.isdigit() else 0


def adopts(known: str, found: str) -> bool:
    """Whether `found` legitimately replaced `known`: an operator recovered after it was made.

    A lagging replica brings an older marker back, a flush followed by a first start a new
    one: neither is a recovery newer than the marker this process knew.
    """
    kind, ms = _parts(found)
    return kind == RECOVERED and ms > _parts(known)[1]


def _nothing() -> None:
    """Before `start`: nothing is kept in memory yet."""


class Epoch:
    """The marker this process knows, and whether promoting is stopped for a data loss."""

    def __init__(self, client: "redis.Redis", clock: Callable[[], datetime]) -> None:
        self.redis, self.clock = client, clock
        self.forget: Callable[[], None] = _nothing  # what a loss drops: given by `start`
        self.known: str | None = None  # the marker found or written by this process
        self.lost: str | None = None  # why nothing is promoted, while a loss is unconfirmed
        self.waits_for_disk = True  # until the server says it cannot (old server, no append-only)
        self.waits_for_replica = True  # until the server refuses WAIT
        self.replicas = 0  # the server's replicas, as its last look found them
        self.wait_ms = WAIT_TIMEOUT_MS
        self.claims = 0  # the highest count of claims seen: a lower one means writes were lost
        self._watch: asyncio.Task[None] | None = None

    async def start(self, forget: Callable[[], None] = _nothing) -> None:
        """Adopt the marker there is, or write the first one (a first start, or an upgrade);
        from then on a loss, or a recovery made elsewhere, drops what `forget` drops (what the
        process keeps in memory, built after this epoch and reading it).

        With Redis unreachable, the first look that reaches it does so instead.
        """
        self.forget = forget
        try:
            await self._look(drop=False)  # nothing is kept in memory yet
        except (RedisError, OSError) as error:
            log.warning("cannot read the data marker yet: %s", error)

    async def verify(self) -> str | None:
        """Look once; the problem while promoting is stopped, else None."""
        return await self._look(drop=True)

    async def _look(self, *, drop: bool) -> str | None:
        # The count this process had seen when it asked: a claim it counts while the read is
        # on its way comes after the read, so the answer may be lower than `self.claims` then.
        seen = self.claims
        value, flag, claims = await self._read()
        if flag is not None:
            if self.known is None:  # the recovery's marker will be adopted
                self.known = value
            self._stop(flag, drop=drop and self.lost is None)
            return self.lost
        if self.known is None:
            self.known, self.lost = value or await self._first(), None
            self.claims = max(self.claims, claims)
            return None
        if value != self.known:
            if value is not None and adopts(self.known, value):
                log.warning("data marker recovered by an operator elsewhere: %s", value)
                self.known, self.lost, self.claims = value, None, claims
                self.forget()
                return None
            gone = f"the marker {self.known} is {'gone' if value is None else f'now {value}'}"
            return await self._lost(gone, drop=drop)
        if claims < seen:  # a replica that lagged took over: the marker is the same
            return await self._lost(
                f"its count of promotion claims went back from {seen} to {claims}", drop=drop
            )
        self.claims = max(self.claims, claims)
        self.lost = None  # the flag is gone and the marker is still ours: an operator recovered
        return None

    async def _lost(self, how: str, *, drop: bool) -> str | None:
        """Raise the flag every process honours, and stop."""
        why = (
            f"Redis lost Cascade's data ({how}): pauses, promotion records and histories"
            " may be gone, so nothing is promoted"
        )
        await self.redis.set(keys.DATA_LOST, why, nx=True)
        self._stop((await self._read())[1] or why, drop=drop)
        return self.lost

    async def _first(self) -> str | None:
        """Write the marker on a Redis without one; of several processes, the first wins."""
        await self.redis.set(keys.EPOCH, marker(NEW, self._ms()), nx=True)
        value, _, _ = await self._read()
        log.info("data marker written: %s", value)
        return value

    async def recover(self) -> str:
        """The operator confirms the loss: a new marker, and promoting resumes everywhere."""
        found, _, claims = await self._read()
        newest = max([self._ms(), *(_parts(v)[1] + 1 for v in (self.known, found) if v)])
        value = marker(RECOVERED, newest)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.EPOCH, value)
            pipe.delete(keys.DATA_LOST)
            await pipe.execute()
        self.known, self.lost, self.claims = value, None, claims
        self.forget()
        log.warning("data loss confirmed by an operator: promoting again (marker %s)", value)
        return value

    async def durable(self) -> bool:
        """Count the guarding write just made (a claim, a pause), then wait until it is on
        disk (WAITAOF) and, where the server has replicas, on one of them (WAIT).

        A failover promotes a replica that may lag: a write it never got is lost with the
        count that goes with it, and only this process, which remembers the count, could
        tell. False only when the server could and did not in time: such a claim is not
        sent (a crash or a failover could lose it and the promotion be made twice).
        """
        if self.replicas:
            # One connection (a pipeline): WAIT waits for what its client wrote, the count
            # here, and with it everything written before it.
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.incr(keys.CLAIMS)
                pipe.execute_command("WAIT", 1, self.wait_ms)
                count, acked = await pipe.execute(raise_on_error=False)
            if isinstance(count, Exception):
                raise count
            replicated = self._on_replica(acked)
        else:
            count, replicated = await self.redis.incr(keys.CLAIMS), True
        self.claims = max(self.claims, int(count))
        if not self.waits_for_disk:
            return replicated
        try:
            local, _ = await self.redis.execute_command(  # type: ignore[no-untyped-call]
                "WAITAOF", 1, 0, self.wait_ms
            )
        except ResponseError as error:  # unknown command, or append-only off: nothing to wait
            log.info("WAITAOF unavailable, claims are not waited for on disk: %s", error)
            self.waits_for_disk = False
            return replicated
        return int(local) >= 1 and replicated

    def _on_replica(self, answer: Any) -> bool:
        if isinstance(answer, ResponseError):  # a server that does not allow WAIT
            log.info("WAIT unavailable, claims are not waited for on a replica: %s", answer)
            self.waits_for_replica, self.replicas = False, 0
            return True
        if isinstance(answer, Exception):
            raise answer
        if int(answer) < 1:
            log.warning("no replica confirmed a write within %d ms", self.wait_ms)
            return False
        return True

    def watch(self) -> None:
        """Look every `CHECK_EVERY` seconds, so `/status` and `/readyz` tell without a reconcile."""
        self._watch = asyncio.create_task(self._watching())

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None

    async def _watching(self) -> None:
        while True:
            await asyncio.sleep(CHECK_EVERY)
            try:
                await self.verify()
            except (RedisError, OSError) as error:
                log.warning("cannot check the data marker: %s", error)

    async def _read(self) -> tuple[str | None, str | None, int]:
        """The marker, the flag and the count; and how many replicas are online now, kept
        for `durable` (a replica added or gone is seen within `CHECK_EVERY`)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.EPOCH)
            pipe.get(keys.DATA_LOST)
            pipe.get(keys.CLAIMS)
            if self.waits_for_replica:
                pipe.info("replication")
            value, flag, claims, *replication = await pipe.execute()
        if replication:
            self.replicas = _online(replication[0])
        return _text(value), _text(flag), int(claims or 0)

    def _stop(self, why: str, *, drop: bool) -> None:
        if self.lost is None:
            log.error("%s; %s", why, HOW)
        self.lost = why
        if drop:
            self.forget()

    def _ms(self) -> int:
        return int(self.clock().timestamp() * 1000)


def _online(replication: dict[str, Any]) -> int:
    """Replicas that have finished their first sync: one still syncing cannot confirm a
    write, and a failover to it would lose the marker too, which is noticed."""
    return sum(
        1
        for name, replica in replication.items()
        if name.startswith("slave")
        and isinstance(replica, dict)
        and replica.get("state") == "online"
    )


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
