"""Open the asyncio Redis client: `REDIS_URL` as given, or the embedded server's."""

from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.connection import HiredisRespSerializer
from redis.exceptions import NoScriptError
from redis.typing import EncodableT


class _PackedByHiredis:
    """Commands packed by hiredis, in C, as redis-py's synchronous client packs them.

    Its asyncio connection packs them in Python, argument by argument: a sixth of the
    instructions of a delivery's fold command (cachegrind). The bytes are the same.
    """

    _packer = HiredisRespSerializer()

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        packed: list[bytes] = self._packer.pack(*args)  # type: ignore[arg-type]  # typed `*args: List`
        return packed


class _Tcp(_PackedByHiredis, redis.Connection):
    pass


class _Tls(_PackedByHiredis, redis.SSLConnection):
    pass


class _Unix(_PackedByHiredis, redis.UnixDomainSocketConnection):
    pass


_PACKED: dict[type[AbstractConnection], type[AbstractConnection]] = {
    redis.Connection: _Tcp,
    redis.SSLConnection: _Tls,
    redis.UnixDomainSocketConnection: _Unix,
}


def connect(url: str) -> "redis.Redis":
    """A client for `url`; `rediss://` accepts Heroku Redis's self-signed certificate."""
    if url.startswith("rediss://"):
        client = redis.Redis.from_url(url, decode_responses=True, ssl_cert_reqs="none")
    else:
        client = redis.Redis.from_url(url, decode_responses=True)
    pool = client.connection_pool
    pool.connection_class = _PACKED.get(pool.connection_class, pool.connection_class)
    return client


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
