"""The batch seam: readers add commands to one round trip and read typed handles back."""

import pytest
import redis.asyncio as redis

from app.storage.batch import Batch
from tests.storage.round_trips import count_round_trips


async def test_each_reader_gets_its_own_replies_in_one_round_trip(
    redis_client: "redis.Redis", monkeypatch: pytest.MonkeyPatch
) -> None:
    await redis_client.set("cascade:a", "1")
    await redis_client.hset("cascade:h", mapping={"x": "2"})
    batch = Batch()
    both = batch.add(
        lambda pipe: pipe.get("cascade:a").hgetall("cascade:h"), lambda r: (int(r[0]), r[1])
    )
    none = batch.add(lambda pipe: None, len)  # a reader that has nothing to ask this time
    missing = batch.add(lambda pipe: pipe.get("cascade:missing"), lambda r: r[0])
    trips = count_round_trips(monkeypatch)
    await batch.send(redis_client)
    assert trips == [["GET", "HGETALL", "GET"]]
    assert (both.value, none.value, missing.value) == ((1, {"x": "2"}), 0, None)


async def test_a_reply_is_read_only_after_its_batch_is_sent() -> None:
    reply = Batch().add(lambda pipe: pipe.get("cascade:a"), lambda r: r[0])
    with pytest.raises(RuntimeError):
        _ = reply.value


async def test_a_reply_that_cannot_be_parsed_fails_its_reader_not_the_batch(
    redis_client: "redis.Redis",
) -> None:
    batch = Batch()
    bad = batch.add(lambda pipe: pipe.get("cascade:missing"), lambda r: int(r[0]))
    good = batch.add(lambda pipe: pipe.set("cascade:b", "x"), lambda r: bool(r[0]))
    await batch.send(redis_client)
    assert good.value is True
    with pytest.raises(TypeError):
        _ = bad.value


async def test_behind_a_script_redis_forgot_the_batch_is_queued_again(
    redis_client: "redis.Redis", monkeypatch: pytest.MonkeyPatch
) -> None:
    script = redis_client.register_script("return redis.call('incr', KEYS[1])")
    await redis_client.script_flush()  # as after a Redis restart
    batch = Batch()
    counted = batch.add(lambda pipe: pipe.get("cascade:n"), lambda r: r[0])
    trips = count_round_trips(monkeypatch)
    assert await batch.send_after(redis_client, script, ["cascade:n"], []) == 1
    assert counted.value == "1"  # read after the script ran, once
    assert trips == [["EVALSHA", "GET"], ["SCRIPT LOAD"], ["EVALSHA", "GET"]]
