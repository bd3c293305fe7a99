"""Shared fixtures: one real Redis-compatible server for the whole session (never fakeredis)."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis

from app.redis_client import connect
from app.redis_server import EmbeddedRedis

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
