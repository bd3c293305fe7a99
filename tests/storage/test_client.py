"""`rediss://` works against a server whose certificate no one vouches for, as Heroku Redis's."""

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
import redis.asyncio as redis
import trustme
from asgi_lifespan import LifespanManager
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import MovedError
from redis.utils import HIREDIS_AVAILABLE

from app.main import create_app
from app.storage import keys
from app.storage.client import (
    UnsupportedRedis,
    cluster_problem,
    connect,
    explain,
    open_client,
)
from tests.inprocess import Cascade, cascades, clean_environment, eventually, make_settings
from tests.redis_cluster import ValkeyCluster


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
    ("url", "told"),
    [
        ("redis://:redis-sekrit@10.0.0.1:6379,10.0.0.2:6379/0", "names several servers"),
        ("redis://:redis-sekrit@10.0.0.1,10.0.0.2/0", "names several servers"),
        ("redis://:redis-sekrit@10.0.0.1:sixty/0", "is not the URL of one Redis server"),
        ("http://:redis-sekrit@10.0.0.1:6379", "is not the URL of one Redis server"),
    ],
    ids=["several-hosts", "several-hosts-no-port", "bad-port", "not-redis"],
)
def test_a_url_that_is_not_one_server_is_refused_without_its_password(url: str, told: str) -> None:
    with pytest.raises(UnsupportedRedis) as refused:
        connect(url)
    assert f"REDIS_URL {told}" in str(refused.value)
    assert "redis://[:password@]host:port" in str(refused.value)  # what to write instead
    assert "any one node of a Redis Cluster" in str(refused.value)
    assert "sekrit" not in str(refused.value)


# one server or a cluster: the node says which ------------------------------------------------


async def test_a_cluster_node_is_told_from_one_server_by_asking_it(
    valkey_cluster: ValkeyCluster, redis_url: str
) -> None:
    clustered, plain = await open_client(valkey_cluster.url), await open_client(redis_url)
    try:
        assert isinstance(clustered, RedisCluster)
        await clustered.ping()
        assert len(clustered.get_primaries()) == 3  # found from the one node named
        assert type(plain) is redis.Redis
    finally:
        await clustered.aclose()
        await plain.aclose()


async def test_a_redis_that_does_not_answer_at_start_is_taken_for_one_server() -> None:
    client = await open_client("redis://127.0.0.1:1/0")
    assert type(client) is redis.Redis  # `/readyz` says it is unreachable meanwhile
    await client.aclose()


async def test_cascade_does_not_start_on_a_url_naming_several_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_environment(monkeypatch)
    app = create_app(make_settings("redis://:redis-sekrit@a:6379,b:6379/0", tmp_path, "0s"))
    with pytest.raises(UnsupportedRedis, match="names several servers") as refused:
        async with LifespanManager(app):
            pass
    assert "sekrit" not in str(refused.value)


async def test_a_cluster_has_one_database(valkey_cluster: ValkeyCluster) -> None:
    with pytest.raises(UnsupportedRedis, match="a Redis Cluster, which has one database"):
        await open_client(valkey_cluster.url.replace("/0", "/1"))


async def test_a_cluster_that_does_not_serve_every_slot_is_named(
    cluster_node: str, valkey_cluster: ValkeyCluster, redis_url: str
) -> None:
    problem = await cluster_problem(cluster_node)  # a node never given slots
    assert problem is not None
    assert "(cluster_state:fail, 0 of 16384 slots assigned)" in problem
    assert "valkey-cli --cluster fix" in problem
    assert await cluster_problem(valkey_cluster.url) is None
    assert await cluster_problem(redis_url) is None  # no cluster


async def test_readyz_tells_a_cluster_without_slots_from_redis_unreachable(
    cluster_node: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_environment(monkeypatch)
    app = create_app(make_settings(cluster_node, tmp_path, "0s"))
    async with LifespanManager(app, startup_timeout=30) as started:  # it starts, and says why
        assert isinstance(app.state.runtime.redis, RedisCluster)
        transport = httpx.ASGITransport(app=started.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cascade") as client:
            ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["detail"].startswith(
        "REDIS_URL is a node of a Redis Cluster that does not serve every slot"
        " (cluster_state:fail, 0 of 16384 slots assigned)"
    )


async def test_a_cluster_node_taken_for_one_server_is_told_to_restart(
    valkey_cluster: ValkeyCluster,
) -> None:
    """Redis did not answer when Cascade started: it took the node for one server, and a
    command for a key on another node is answered MOVED."""
    plain = connect(valkey_cluster.url)
    try:
        moved = None
        for service in (f"svc-{i}" for i in range(20)):
            try:
                await plain.get(keys.lock(service))
            except MovedError as error:
                moved = error
                break
        assert moved is not None
        why = await explain(valkey_cluster.url, plain, moved)
    finally:
        await plain.aclose()
    assert why.endswith(
        "that Cascade took for one server, as it did not answer when Cascade"
        " started: restart Cascade"
    )
    assert await explain(None, plain, RedisConnectionError()) == (
        "Redis unreachable: ConnectionError"
    )


async def test_cascade_promotes_on_a_cluster_from_one_nodes_url(
    valkey_cluster: ValkeyCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process, the sandbox as Heroku (tests/e2e has it as real processes)."""
    valkey_cluster.flush()
    async with cascades(valkey_cluster.url, tmp_path, monkeypatch) as start:
        cascade = await start(min_age="0s")
        assert isinstance(cascade.runtime.redis, RedisCluster)
        assert (await cascade.client.get("/readyz")).status_code == 200
        sandbox = cascade.runtime.sandbox
        assert sandbox is not None
        await sandbox.deploy("api-qa", "a" * 40)
        await eventually(lambda: _runs(cascade, "api-prod", "a" * 40), "A to reach api-prod")
        targets = [p.targets[0].app.name for p in sandbox.world.promotions]
        assert sorted(targets) == ["api-prod", "api-st"]  # each once
        assert set(cascade.runtime.epoch.known) == {None, "api", "web"}

        async def succeeded() -> bool:
            kinds = [e["kind"] for e in await cascade.events(service="api", limit=1000)]
            return kinds.count("promotion.succeeded") == 2

        await eventually(succeeded, "both promotions recorded")  # after the stage shows A


async def _runs(cascade: Cascade, app: str, commit: str) -> bool:
    return await cascade.stage_commit("api", app) == commit
