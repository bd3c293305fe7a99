"""Open the asyncio Redis client: `REDIS_URL` as given, or the embedded server's.

Commands are packed by hiredis, in C: redis-py's asyncio connection does so itself
from 8.2 on (before, Cascade swapped in a connection class of its own for it).
"""

from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

ONE_SERVER = (
    "Cascade needs one Redis primary (replicas are welcome), as Heroku Redis gives: write"
    " REDIS_URL as redis://[:password@]host:port[/db], or rediss://… for TLS"
)


class UnsupportedRedis(Exception):
    """`REDIS_URL` names something Cascade cannot keep its data on; the message says what to
    do and never repeats the URL, which holds the password."""


def connect(url: str) -> "redis.Redis":
    """A client for `url`; `rediss://` accepts Heroku Redis's self-signed certificate."""
    try:
        if url.startswith("rediss://"):
            return redis.Redis.from_url(url, decode_responses=True, ssl_cert_reqs="none")
        return redis.Redis.from_url(url, decode_responses=True)
    except ValueError:  # several hosts, a bad port or scheme: its text may quote the URL
        raise UnsupportedRedis(
            f"REDIS_URL is not the URL of one Redis server. {ONE_SERVER}"
        ) from None


async def refuse_a_cluster(client: "redis.Redis") -> None:
    """Say so at once when `client` reaches a node of a Redis Cluster.

    Cascade's scripts and its data marker (`app.storage.epoch`) assume one keyspace: on a cluster
    a command for a key another node holds fails with MOVED, and a failover of a shard
    without the marker would lose claims unnoticed.
    """
    info = await client.info("cluster")
    if int(info.get("cluster_enabled", 0)):
        raise UnsupportedRedis(f"REDIS_URL is a node of a Redis Cluster. {ONE_SERVER}")


async def script_first(
    client: "redis.Redis",
    script: AsyncScript,
    keys: Sequence[str],
    args: Sequence[Any],
    then: Callable[[Pipeline], None] | None = None,
) -> list[Any]:
    """`script`, then the commands `then` queues, in one pipeline: one round trip.

    Calling a script loads it when Redis forgot it (a restart, SCRIPT FLUSH); a pipeline
    does not, so on NoScriptError the script is loaded and the pipeline sent again.
    """
    while True:
        async with client.pipeline(transaction=False) as pipe:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            if then is not None:
                then(pipe)
            try:
                return list(await pipe.execute())
            except NoScriptError:
                await client.script_load(script.script)
