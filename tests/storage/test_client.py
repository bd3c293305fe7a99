"""`rediss://` works against a server whose certificate no one vouches for, as Heroku Redis's."""

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis.asyncio as redis
import trustme
from asgi_lifespan import LifespanManager
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.utils import HIREDIS_AVAILABLE

from app.main import create_app
from app.storage.client import UnsupportedRedis, connect, refuse_a_cluster
from tests.inprocess import clean_environment, make_settings


@contextlib.asynccontextmanager
async def tls_in_front_of(plain_url: str) -> AsyncIterator[int]:
    """A TLS terminator with a certificate from an unknown CA, forwarding to `plain_url`."""
    backend = urlparse(plain_url)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("127.0.0.1").configure_cert(context)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(backend.hostname, backend.port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def test_rediss_accepts_a_self_signed_certificate(redis_url: str) -> None:
    async with tls_in_front_of(redis_url) as port:
        client = connect(f"rediss://127.0.0.1:{port}/0")
        try:
            await client.set("cascade:tls-check", "ok")
            assert await client.get("cascade:tls-check") == "ok"
        finally:
            await client.aclose()


async def test_without_that_allowance_the_certificate_is_refused(redis_url: str) -> None:
    async with tls_in_front_of(redis_url) as port:
        strict = redis.Redis.from_url(f"rediss://127.0.0.1:{port}/0")
        try:
            with pytest.raises(RedisConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                await strict.ping()
        finally:
            await strict.aclose()


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:1/0", "rediss://127.0.0.1:1/0", "unix:///tmp/cascade-none.sock"]
)
def test_commands_are_packed_by_hiredis(url: str) -> None:
    """redis-py (8.2 on) packs with hiredis when it is installed: the reason for its floor."""
    assert HIREDIS_AVAILABLE
    pool = connect(url).connection_pool
    connection = pool.connection_class(**pool.connection_kwargs)
    packed = b"".join(connection.pack_command("CONFIG GET", "maxmemory", 5, "caf\u00e9", b"raw"))
    assert packed == (
        b"*6\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$9\r\nmaxmemory\r\n$1\r\n5\r\n"
        b"$5\r\ncaf\xc3\xa9\r\n$3\r\nraw\r\n"
    )


# what Cascade cannot keep its data on ------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://:redis-sekrit@10.0.0.1:6379,10.0.0.2:6379/0",  # a cluster's seed list
        "redis://:redis-sekrit@10.0.0.1:sixty/0",
        "http://:redis-sekrit@10.0.0.1:6379",
    ],
    ids=["several-hosts", "bad-port", "not-redis"],
)
def test_a_url_that_is_not_one_server_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(UnsupportedRedis) as refused:
        connect(url)
    assert "REDIS_URL is not the URL of one Redis server" in str(refused.value)
    assert "redis://[:password@]host:port" in str(refused.value)  # what to write instead
    assert "sekrit" not in str(refused.value)


async def test_a_cluster_node_is_refused_and_a_plain_server_is_not(
    cluster_node: str, redis_client: "redis.Redis"
) -> None:
    """On a cluster a command for another node's key fails with MOVED, and the data marker
    lives on one shard only: refused at once, not found out at the first promotion."""
    node = connect(cluster_node)
    try:
        with pytest.raises(UnsupportedRedis, match="a node of a Redis Cluster"):
            await refuse_a_cluster(node)
    finally:
        await node.aclose()
    await refuse_a_cluster(redis_client)  # no error


async def test_cascade_does_not_start_on_a_cluster(
    cluster_node: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_environment(monkeypatch)
    app = create_app(make_settings(cluster_node, tmp_path, "0s"))
    with pytest.raises(UnsupportedRedis, match="Cascade needs one Redis primary"):
        async with LifespanManager(app):
            pass
