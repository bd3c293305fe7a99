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


def connect(url: str) -> "redis.Redis":
    """A client for `url`; `rediss://` accepts Heroku Redis's self-signed certificate."""
    if url.startswith("rediss://"):
        return redis.Redis.from_url(url, decode_responses=True, ssl_cert_reqs="none")
    return redis.Redis.from_url(url, decode_responses=True)


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
