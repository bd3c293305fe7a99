"""Waiting until a guarding write is kept: on disk (WAITAOF) and, where the server has
replicas, on one of them (WAIT). `Epoch` counts each such write in its place and waits here,
on one connection of its own: WAIT and WAITAOF wait for what their connection wrote.
"""

import logging
from typing import Any

from redis.exceptions import ResponseError

from app.storage.client import Client, node_name, one_connection, send

log = logging.getLogger("app.storage.epoch")  # what it says is the data marker's

WAIT_TIMEOUT_MS = 2000  # an everysec fsync comes within a second, a replica's copy sooner


class Durability:
    """What the servers can wait for, learnt as they answer, and the wait itself."""

    def __init__(self) -> None:
        self.waits_for_disk = True  # until the server says it cannot (old server, no append-only)
        self.waits_for_replica = True  # until the server refuses WAIT
        self.replicas: dict[str, int] = {}  # node ("" on one server) -> replicas at the last look
        self.wait_ms = WAIT_TIMEOUT_MS

    async def count(self, client: Client, key: str) -> tuple[int, bool]:
        """Add one to the count at `key` (a place's hash), then wait on that key's server; the
        new count, and False only when the server could and did not keep it in time.

        WAIT goes with the write (one round trip), WAITAOF after its reply: sent with it, it
        waits for the next fsync, after it, the write's is done.
        """
        replicas = self.waits_for_replica and self.replicas.get(node_name(client, key), 0)
        commands: list[tuple[Any, ...]] = [("HINCRBY", key, "claims", 1)]
        if replicas:
            commands.append(("WAIT", 1, self.wait_ms))
        async with one_connection(client, key) as connection:
            count, *acked = await send(connection, *commands)
            if isinstance(count, Exception):
                raise count
            replicated = self.on_replica(acked[0]) if acked else True
            if not self.waits_for_disk:
                return int(count), replicated
            (synced,) = await send(connection, ("WAITAOF", 1, 0, self.wait_ms))
        return int(count), self.on_disk(synced) and replicated

    def on_replica(self, answer: Any) -> bool:
        if isinstance(answer, ResponseError):  # a server that does not allow WAIT
            log.info("WAIT unavailable, claims are not waited for on a replica: %s", answer)
            self.waits_for_replica, self.replicas = False, {}
            return True
        if isinstance(answer, Exception):
            raise answer
        if int(answer) < 1:
            log.warning("no replica confirmed a write within %d ms", self.wait_ms)
            return False
        return True

    def on_disk(self, answer: Any) -> bool:
        if isinstance(answer, ResponseError):  # unknown command, or append-only off
            log.info("WAITAOF unavailable, claims are not waited for on disk: %s", answer)
            self.waits_for_disk = False
            return True
        if isinstance(answer, Exception):
            raise answer
        return int(answer[0]) >= 1


def online(info: dict[str, Any]) -> int:
    """Replicas that have finished their first sync: one still syncing cannot confirm a
    write, and a failover to it would lose the marker too, which is noticed."""
    return sum(
        1
        for name, replica in info.items()
        if name.startswith("slave")
        and isinstance(replica, dict)
        and replica.get("state") == "online"
    )
