import asyncio

import pytest

from app.storage import keys
from app.storage.batch import Batch
from app.storage.client import Client, on_cluster
from app.storage.live import Live
from app.storage.locks import Locks
from app.storage.store import Store
from tests.factories import NOW, pause, release
from tests.storage.round_trips import count_round_trips


@pytest.fixture
def redis_client(server_or_cluster: Client) -> Client:
    """Every test here runs on one server and on a three-master Redis Cluster."""
    return server_or_cluster


@pytest.fixture
def locks(redis_client: Client) -> Locks:
    return Locks(redis_client)


async def test_only_one_holder_at_a_time(locks: Locks) -> None:
    results: list[bool] = []
    everyone_tried = asyncio.Event()

    async def contender() -> None:
        async with locks.hold("api") as lease:
            results.append(lease.held)
            if len(results) == 10:
                everyone_tried.set()
            await everyone_tried.wait()  # the holder keeps the lock until all have tried

    await asyncio.wait_for(asyncio.gather(*(contender() for _ in range(10))), timeout=10)
    assert results.count(True) == 1


async def test_lock_is_released_after_the_block(locks: Locks, redis_client: Client) -> None:
    async with locks.hold("api") as lease:
        assert lease.held is True
    assert await redis_client.exists(keys.lock("api")) == 0
    async with locks.hold("api") as again:
        assert again.held is True


async def test_lock_has_an_expiry(locks: Locks, redis_client: Client) -> None:
    async with locks.hold("api"):
        ttl = await redis_client.pttl(keys.lock("api"))
    assert 0 < ttl <= keys.LOCK_TTL.total_seconds() * 1000


async def test_services_lock_independently(locks: Locks) -> None:
    async with locks.hold("api") as api, locks.hold("web") as web:
        assert (api.held, web.held) == (True, True)


async def test_a_second_caller_is_news_to_the_holder_once(locks: Locks) -> None:
    async with locks.hold("api") as lease:
        assert lease.held is True
        async with locks.hold("api") as second:
            assert second.held is False
    assert lease.news is True
    async with locks.hold("api") as again:
        assert again.held is True
    assert again.news is False


async def test_no_caller_no_news(locks: Locks) -> None:
    async with locks.hold("api") as lease:
        assert lease.held is True
    assert lease.news is False


async def test_non_owner_cannot_release_the_lock(locks: Locks, redis_client: Client) -> None:
    async with locks.hold("api") as lease:
        assert lease.held is True
        await redis_client.set(keys.lock("api"), "someone-else")  # our lock expired, theirs now
    assert await redis_client.get(keys.lock("api")) == "someone-else"


class SlowRenewalLocks(Locks):
    """Locks whose renewal, when cancelled, takes a moment to end (as mid-way through a call)."""

    def __init__(self, client: Client, renewal_cancelled: asyncio.Event) -> None:
        super().__init__(client)
        self.renewal_cancelled = renewal_cancelled

    async def _keep(self, key: str, token: str) -> None:
        try:
            await super()._keep(key, token)
        except asyncio.CancelledError:
            self.renewal_cancelled.set()
            await asyncio.sleep(0.5)
            raise


async def test_lock_holder_cancelled_while_the_renewal_ends_stays_cancelled(
    redis_client: Client,
) -> None:
    renewal_cancelled = asyncio.Event()
    locks = SlowRenewalLocks(redis_client, renewal_cancelled)
    ran_on = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("api") as lease:
            assert lease.held
            await asyncio.sleep(0)  # the renewal task starts
        ran_on.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(holder())
    try:
        await asyncio.wait_for(renewal_cancelled.wait(), timeout=10)
        task.cancel()  # the holder is in hold's finally, awaiting the renewal
        await asyncio.wait({task}, timeout=2)
        assert not ran_on.is_set()
        assert task.cancelled()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_batch_sent_with_the_lock_is_read_in_its_round_trip(
    locks: Locks, redis_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    if on_cluster(redis_client):
        pytest.skip("round trips are counted on one server: a cluster's pipeline goes per node")
    await redis_client.set("cascade:probe", "news")
    batch = Batch()
    probe = batch.add(lambda pipe: pipe.get("cascade:probe"), lambda r: r[0])
    trips = count_round_trips(monkeypatch)
    async with locks.hold("api", batch) as lease:
        assert (lease.held, probe.value) == (True, "news")
        assert trips == [["EVALSHA", "GET"]]  # one round trip: the lock, then the read
        async with locks.hold("api") as second:
            assert second.held is False


async def test_the_view_rides_with_the_lock_though_the_global_pause_is_elsewhere(
    locks: Locks, redis_client: Client
) -> None:
    """A reconcile's first round trip: on a cluster the lock and the service's keys are on
    one node, the global pause on another, and the pipeline asks both."""
    store, apps = Store(redis_client), ["api-qa", "api-st"]
    await store.put_release("api", release("api-qa", 1, "A"), NOW)
    await store.set_pause(pause("freeze"))
    batch = Batch()
    read = store.send_view(batch, "api", apps)
    async with locks.hold("api", batch):
        view = read.value
    assert view.global_pause == pause("freeze")
    assert [stage.commit for stage in view.stages] == ["A", None]


async def test_the_lock_is_taken_after_redis_forgot_its_script(
    locks: Locks, redis_client: Client
) -> None:
    await redis_client.script_flush()  # as after a Redis restart
    batch = Batch()
    exists = batch.add(lambda pipe: pipe.exists(keys.lock("api")), lambda r: r[0])
    async with locks.hold("api", batch) as lease:
        assert (lease.held, exists.value) == (True, 1)  # read after the lock was taken


async def test_the_live_feed_is_told_in_the_round_trip_that_releases_the_lock(
    locks: Locks, redis_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    if on_cluster(redis_client):
        pytest.skip("round trips are counted on one server: a cluster's pipeline goes per node")
    async with redis_client.pubsub(ignore_subscribe_messages=True) as pubsub:
        await pubsub.subscribe(keys.LIVE)
        trips = count_round_trips(monkeypatch)
        async with locks.hold("api") as lease:
            heard = Live.send_change(lease.released, "api")
            assert await pubsub.get_message(timeout=0.2) is None  # not while it is held
        assert trips == [["EVALSHA"], ["EVALSHA", "PUBLISH"]]  # take; release and tell
        assert heard.value == 1
        message = await pubsub.get_message(timeout=2)
        async with locks.hold("api"):
            pass  # nothing given: nothing published
        assert await pubsub.get_message(timeout=0.2) is None
    assert message is not None
    assert message["data"] == "api"
    assert await redis_client.get(keys.lock("api")) is None
