"""Noticing that Redis lost Cascade's data while it ran: a failover to a lagging replica, a
crash inside the one-second fsync window, a flush.

A marker is written where there is none, and each process remembers the value it found or
wrote. Found gone, or changed to a value no operator's recovery wrote after it, the data was
lost: the process sets `keys.DATA_LOST`, which every process honours, and promotes nothing
until an operator confirms with `POST /recover` (or `cascade recover`), which writes a new
marker. What a process keeps in memory is dropped either way.

A lagging replica keeps the marker, so a count of guarding writes (promotion claims and
pauses) goes with it: each adds one, and each process remembers the highest count it saw.
Found lower, writes this process saw were lost. Only the writer may have seen the count, so
a claim is sent and a pause acknowledged only once it is on disk and, where the server has
replicas, on one of them too (`Epoch.durable`).

Marker and count live in one hash per *place* (`keys.epoch`): a part of the data that can be
lost on its own. One server loses everything or nothing: one place. A Redis Cluster's masters
each fail over, and lose writes, on their own; a service's keys all share its slot, so each
service is a place, its hash on its slot, beside the records it guards: whichever shard loses
data loses a service's marker or count with it, and moves them with its keys when a slot is
resharded. The global pause is a place of its own, on its key's slot. The flag is one key,
read and written by commands of its own.
"""

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from app.storage import keys
from app.storage.client import UNAVAILABLE, Client, on_cluster, replication
from app.storage.durable import Durability, online

log = logging.getLogger(__name__)

NEW, RECOVERED = "new", "recovered"  # the marker's kinds: written on an empty Redis, by recover
CHECK_EVERY = 2.0  # seconds between the watch's looks (and a look before every promotion)
MARKER, CLAIMS = "marker", "claims"  # the fields of a place's hash (`keys.epoch`)
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


Place = str | None  # a service on a cluster; None: the global pause's, or the one server


def _nothing() -> None:
    """Before `start`: nothing is kept in memory yet."""


class Epoch(Durability):
    """The markers this process knows, and whether promoting is stopped for a data loss."""

    def __init__(
        self,
        client: Client,
        clock: Callable[[], datetime],
        services: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        super().__init__()
        self.redis, self.clock, self.services = client, clock, services
        self.forget: Callable[[], None] = _nothing  # what a loss drops: given by `start`
        self.sharded = on_cluster(client)  # a place per service, else the one place
        self.known: dict[Place, str] = {}  # the markers found or written by this process
        self.lost: str | None = None  # why nothing is promoted, while a loss is unconfirmed
        self.claims: dict[Place, int] = {}  # the highest counts seen: lower means writes lost
        self._watch: asyncio.Task[None] | None = None

    def place(self, service: str | None) -> Place:
        """Where the data of `service` (None: the global pause) can be lost on its own."""
        return service if self.sharded else None

    def places(self) -> list[Place]:
        return [None, *self.services()] if self.sharded else [None]

    async def start(self, forget: Callable[[], None] = _nothing) -> None:
        """Adopt the markers there are, or write the first ones (a first start, an upgrade);
        from then on a loss, or a recovery made elsewhere, drops what `forget` drops (what the
        process keeps in memory, built after this epoch and reading it).

        With Redis unreachable, the first look that reaches it does so instead.
        """
        self.forget = forget
        try:
            await self._look(drop=False)  # nothing is kept in memory yet
        except UNAVAILABLE as error:
            log.warning("cannot read the data marker yet: %s", error)

    async def verify(self, service: str | None = None) -> str | None:
        """Look once; the problem while promoting is stopped, else None. With `service`, at
        its place and the global pause's only (before promoting it: what guards it), else at
        every place (the watch, `/readyz`); the flag is read either way."""
        return await self._look(drop=True, service=service)

    async def _look(self, *, drop: bool, service: str | None = None) -> str | None:
        # The counts this process had seen when it asked: a claim it counts while the read is
        # on its way comes after the read, so the answer may be lower than `self.claims` then.
        seen = dict(self.claims)
        places = list(dict.fromkeys([None, self.place(service)])) if service else self.places()
        flag, found = await self._read(places)
        if flag is not None:
            for place, (value, _) in found.items():
                if place not in self.known and value is not None:  # a recovery's: adopted
                    self.known[place] = value
            self._stop(flag, drop=drop and self.lost is None)
            return self.lost
        first = [place for place, (value, _) in found.items() if value is None]
        first = [place for place in first if place not in self.known]
        if first:
            found |= await self._first(first)
        gone: list[str] = []
        recovered = False
        for place, (value, claims) in found.items():
            known = self.known.get(place)
            if known is None:  # a first look at this place
                if value is not None:
                    self.known[place], self.claims[place] = value, max(seen.get(place, 0), claims)
            elif value is None:
                gone.append(f"the marker {known} is gone{self._of(place)}")
            elif value != known:
                if adopts(known, value):
                    log.warning("data marker recovered by an operator elsewhere: %s", value)
                    self.known[place], self.claims[place], recovered = value, claims, True
                else:
                    gone.append(f"the marker {known} is now {value}{self._of(place)}")
            elif claims < seen.get(place, 0):  # a replica that lagged took over: same marker
                went = f"went back from {seen[place]} to {claims}{self._of(place)}"
                gone.append(f"its count of promotion claims {went}")
            else:
                self.claims[place] = max(self.claims.get(place, 0), claims)
        if gone:
            return await self._lost("; ".join(gone), drop=drop)
        if recovered:
            self.forget()
        self.lost = None  # no flag, and the markers are ours: an operator recovered
        return None

    async def _lost(self, how: str, *, drop: bool) -> str | None:
        """Raise the flag every process honours, and stop."""
        why = (
            f"Redis lost Cascade's data ({how}): pauses, promotion records and histories"
            " may be gone, so nothing is promoted"
        )
        await self.redis.set(keys.DATA_LOST, why, nx=True)
        self._stop(_text(await self.redis.get(keys.DATA_LOST)) or why, drop=drop)
        return self.lost

    async def _first(self, places: Sequence[Place]) -> dict[Place, tuple[str | None, int]]:
        """Write the marker where there is none; of several processes, the first wins."""
        value = marker(NEW, self._ms())
        async with self.redis.pipeline(transaction=False) as pipe:
            for place in places:
                pipe.hsetnx(keys.epoch(place), MARKER, value)
            for place in places:
                pipe.hmget(keys.epoch(place), [MARKER, CLAIMS])
            replies = (await pipe.execute())[len(places) :]
        found = {place: _found(reply) for place, reply in zip(places, replies, strict=True)}
        log.info("data marker written: %s", ", ".join(sorted({str(v) for v, _ in found.values()})))
        return found

    async def recover(self) -> str:
        """The operator confirms the loss: new markers, and promoting resumes everywhere."""
        places = list(dict.fromkeys([*self.places(), *self.known]))
        _, found = await self._read(places)
        markers = [*self.known.values(), *(value for value, _ in found.values() if value)]
        value = marker(RECOVERED, max([self._ms(), *(_parts(m)[1] + 1 for m in markers)]))
        async with self.redis.pipeline(transaction=False) as pipe:
            for place in places:
                pipe.hset(keys.epoch(place), MARKER, value)
            await pipe.execute()
        await self.redis.delete(keys.DATA_LOST)  # after every marker: a look between waits
        self.known, self.lost = dict.fromkeys(places, value), None
        self.claims = {place: claims for place, (_, claims) in found.items()}
        self.forget()
        log.warning("data loss confirmed by an operator: promoting again (marker %s)", value)
        return value

    async def durable(self, service: str | None = None) -> bool:
        """Count the guarding write just made for `service` (a claim, a pause; None: the
        global pause) in its place, then wait until the place's server has it on disk
        (WAITAOF) and, where it has replicas, on one of them (WAIT).

        A failover promotes a replica that may lag: a write it never got is lost with the
        count that goes with it, and only this process, which remembers the count, could
        tell. False only when the server could and did not in time: such a claim is not
        sent (a crash or a failover could lose it and the promotion be made twice).

        One connection to that server (`one_connection`): WAIT and WAITAOF wait for what
        their connection wrote, the count here, and with it everything written there before.
        """
        place = self.place(service)
        count, kept = await self.count(self.redis, keys.epoch(place))
        self.claims[place] = max(self.claims.get(place, 0), count)
        return kept

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
            except UNAVAILABLE as error:
                log.warning("cannot check the data marker: %s", error)

    async def _read(
        self, places: Sequence[Place]
    ) -> tuple[str | None, dict[Place, tuple[str | None, int]]]:
        """The flag, and each place's marker and count; and how many replicas each server has
        online now, kept for `durable` (a replica added or gone is seen within `CHECK_EVERY`).
        On one server, all in one round trip; a cluster's pipeline refuses INFO, which is
        asked of each master apart."""
        asks_info = self.waits_for_replica and not self.sharded
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.DATA_LOST)
            for place in places:
                pipe.hmget(keys.epoch(place), [MARKER, CLAIMS])
            if asks_info:
                pipe.info("replication")
            flag, *replies = await pipe.execute()
        if asks_info:
            self.replicas = {"": online(replies.pop())}
        elif self.waits_for_replica:
            masters = await replication(self.redis)
            self.replicas = {name: online(info) for name, info in masters.items()}
        found = {place: _found(reply) for place, reply in zip(places, replies, strict=True)}
        return _text(flag), found

    def _stop(self, why: str, *, drop: bool) -> None:
        if self.lost is None:
            log.error("%s; %s", why, HOW)
        self.lost = why
        if drop:
            self.forget()

    def _ms(self) -> int:
        return int(self.clock().timestamp() * 1000)

    def _of(self, place: Place) -> str:
        """Which place, on a cluster, where there are several."""
        if not self.sharded:
            return ""
        return f" (service {place})" if place else " (the global pause's)"


def _found(reply: Sequence[Any]) -> tuple[str | None, int]:
    value, claims = reply
    return _text(value), int(claims or 0)


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
