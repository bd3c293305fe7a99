"""A promotion's life when the Platform API refuses, fails or never answers."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as redis

from app.core.models import PairState, Pause, PromotionState
from app.core.plan import plan
from app.engine.follow import CLAIM_GRACE
from app.engine.topology import Topology
from app.heroku.client import HerokuClient
from app.sandbox.faults import ErrorFault
from app.storage import keys
from tests.engine.test_reconcile import A
from tests.sandboxed import World


async def ready(world: World) -> None:
    """A on api-qa, old enough to move to api-st."""
    await world.reconciler.reconcile("api")
    await world.sandbox.deploy("api-qa", A)
    await world.settle()
    await asyncio.sleep(0.01)
    await world.reconciler.reconcile("api")  # A is seen running, by Cascade's clock
    world.clock.now += timedelta(hours=1)


async def state_of_st(world: World) -> PairState:
    service = world.reconciler.config.services[0]
    snapshot = await world.observe(service)
    (candidate,) = [c for c in plan(snapshot).candidates if c.pair.target.app == "api-st"]
    return candidate.state


def posts(heroku: HerokuClient) -> int:
    return heroku.calls["POST /pipeline-promotions"]


async def test_a_5xx_answer_is_never_posted_again_and_fails_after_the_grace(make_world) -> None:  # type: ignore[no-untyped-def]
    world = await make_world(resync_seconds=0.001)
    await ready(world)
    world.sandbox.faults.errors.append(
        ErrorFault(method="POST", path_prefix="/pipeline-promotions", status=500, count=5)
    )
    await world.reconciler.reconcile("api")
    assert posts(world.heroku) == 1
    (record,) = await world.reconciler.ledger.unsettled("api")
    assert record.state is PromotionState.CLAIMED
    assert "outcome unknown" in (record.error or "")
    for _ in range(3):
        await world.reconciler.reconcile("api")
    assert posts(world.heroku) == 1
    assert await state_of_st(world) is PairState.PROMOTING

    world.clock.now += CLAIM_GRACE + timedelta(seconds=1)
    await world.reconciler.reconcile("api")
    assert await state_of_st(world) is PairState.FAILED
    assert posts(world.heroku) == 1


async def test_a_refused_promotion_fails_at_once(make_world) -> None:  # type: ignore[no-untyped-def]
    world = await make_world(resync_seconds=0.001)
    await ready(world)
    world.sandbox.faults.errors.append(
        ErrorFault(method="POST", path_prefix="/pipeline-promotions", status=422, count=1)
    )
    await world.reconciler.reconcile("api")
    assert await state_of_st(world) is PairState.FAILED
    await world.reconciler.reconcile("api")
    assert posts(world.heroku) == 1


async def test_targets_that_fail_settle_the_record_failed(make_world) -> None:  # type: ignore[no-untyped-def]
    world = await make_world(resync_seconds=0.001)
    await ready(world)
    world.sandbox.faults.fail_promotions = 1
    await world.reconciler.reconcile("api")
    await world.settle()
    await world.reconciler.reconcile("api")
    assert await state_of_st(world) is PairState.FAILED
    events = await world.reconciler.audit.read("api")
    failed = [e for e in events if e["kind"] == "promotion.failed"]
    assert failed
    assert failed[0]["to"] == "api-st"
    assert posts(world.heroku) == 1


async def test_a_newer_source_release_drops_the_claim_instead_of_promoting(make_world) -> None:  # type: ignore[no-untyped-def]
    world = await make_world(resync_seconds=0.001)
    await ready(world)
    world.clock.now -= timedelta(hours=1)  # A is known but not old enough yet
    await world.reconciler.reconcile("api")
    assert await state_of_st(world) is PairState.WAITING
    # From now on Cascade hears nothing: no webhook, no resync.
    world.reconciler.releases.resync_seconds = 3600
    await world.reconciler.store.mark_resync("api", 3600)
    await world.sandbox.deploy("api-qa", "b" * 40)
    await world.settle()
    world.clock.now += timedelta(hours=1)
    await world.reconciler.reconcile("api")  # A looks ready; the re-read says otherwise
    assert posts(world.heroku) == 0
    assert await world.reconciler.ledger.unsettled("api") == []
    service = world.reconciler.config.services[0]
    snapshot = await world.observe(service)
    assert snapshot.stages[0].commit == "b" * 40


async def deaf(world: World) -> None:
    """Cascade learns A on api-qa while it is too young to move; from then on it hears
    nothing by itself (no webhook in these worlds, no resync) until A is old enough."""
    world.clock.now -= timedelta(hours=1)
    await world.reconciler.reconcile("api")
    assert await state_of_st(world) is PairState.WAITING
    world.clock.now += timedelta(hours=1)
    world.reconciler.releases.resync_seconds = 3600
    await world.reconciler.store.mark_resync("api", 3600)


async def test_a_hotfix_the_decision_did_not_see_is_never_overwritten(make_world) -> None:  # type: ignore[no-untyped-def]
    world = await make_world(resync_seconds=0.001)
    await ready(world)
    await deaf(world)
    hotfix = "f" * 40
    await world.sandbox.deploy("api-st", hotfix)  # its webhook lost: only the re-read sees it
    await world.settle()
    await world.reconciler.reconcile("api")  # A looks ready over what api-st ran before
    assert posts(world.heroku) == 0
    assert world.running("api-st") == hotfix
    assert await world.reconciler.ledger.unsettled("api") == []
    service = world.reconciler.config.services[0]
    (candidate,) = [
        c for c in plan(await world.observe(service)).candidates if c.pair.target.app == "api-st"
    ]
    assert candidate.state is PairState.BLOCKED
    assert "left alone" in candidate.reason


async def test_a_failed_deploy_on_the_source_does_not_wedge_what_runs_there(make_world) -> None:  # type: ignore[no-untyped-def]
    world = await make_world(resync_seconds=0.001)
    await ready(world)
    await deaf(world)
    await world.sandbox.deploy("api-qa", "b" * 40, succeed=False)  # api-qa still runs A
    await world.settle()
    await world.reconciler.reconcile("api")
    assert posts(world.heroku) == 1
    await world.settle()
    assert world.running("api-st") == A


async def test_retry_after_a_failed_promotion_promotes_again(make_world) -> None:  # type: ignore[no-untyped-def]
    world = await make_world(resync_seconds=0.001)
    await ready(world)
    world.sandbox.faults.fail_promotions = 1
    await world.reconciler.reconcile("api")
    await world.settle()
    await world.reconciler.reconcile("api")
    assert await state_of_st(world) is PairState.FAILED
    (failed,) = (await world.reconciler.ledger.find("api", [("api-st", A)])).values()
    await world.reconciler.ledger.drop(failed)  # what POST /retry does
    await world.reconciler.reconcile("api")  # api-st's newest release, of A, failed
    assert posts(world.heroku) == 2
    await world.settle()
    assert world.running("api-st") == A


async def test_a_succeeded_record_never_expires(  # type: ignore[no-untyped-def]
    make_world, redis_client: "redis.Redis"
) -> None:
    world = await make_world(resync_seconds=0.001)
    await ready(world)
    await world.reconciler.reconcile("api")
    await world.settle()
    await world.reconciler.reconcile("api")
    (record,) = (await world.reconciler.ledger.find("api", [("api-st", A)])).values()
    assert record.state is PromotionState.SUCCEEDED
    assert await redis_client.ttl(keys.promotion("api", "api-st", A)) == -1


async def test_promotions_into_one_target_are_serialised_through_the_copy_window(
    make_world,
) -> None:  # type: ignore[no-untyped-def]
    world = await make_world(resync_seconds=0.001)
    await ready(world)
    world.sandbox.copy_seconds = 3600  # A's slug copy never ends here: no release on api-st
    await world.reconciler.reconcile("api")
    assert posts(world.heroku) == 1
    b = "b" * 40
    await world.sandbox.deploy("api-qa", b)
    for _ in range(200):  # B's release phase (A's promotion stays pending)
        if world.running("api-qa") == b:
            break
        await asyncio.sleep(0.01)
    world.clock.now += timedelta(hours=1)  # B is old enough too
    await asyncio.sleep(0.01)  # the resync is due: Cascade learns B
    await world.reconciler.reconcile("api")
    assert posts(world.heroku) == 1  # B waits until A's promotion into api-st settles
    assert await state_of_st(world) is PairState.PROMOTING


async def test_a_stalled_process_never_drops_the_next_holders_record(  # type: ignore[no-untyped-def]
    make_world, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await make_world(resync_seconds=0.001)
    await ready(world)
    promoter = world.reconciler.promoter
    send = promoter._send

    async def stalled(claims: Any, topology: Topology, candidate: Any, changed: Any) -> bool:
        monkeypatch.setattr(promoter, "_send", send)
        # Meanwhile the lock's next holder takes the unsent claim back and promotes afresh.
        await world.reconciler.follower.follow(claims[0].service, topology)
        service = world.reconciler.config.services[0]
        snapshot, _ = await world.reconciler.snapshots.read(service, topology, (), fetch=True)
        assert await promoter.promote(snapshot, topology, [candidate]) is True
        # The stalled process wakes up, and its re-read said no: it gives its claim back.
        return await send(claims, topology, candidate, "its re-read failed")

    monkeypatch.setattr(promoter, "_send", stalled)
    await world.reconciler.reconcile("api")
    (live,) = (await world.reconciler.ledger.find("api", [("api-st", A)])).values()
    assert live.promotion_id is not None  # the next holder's record, still there
    for _ in range(3):
        await world.settle()
        await world.reconciler.reconcile("api")
    into_st = [p for p in world.sandbox.world.promotions if p.targets[0].app.name == "api-st"]
    assert len(into_st) == 1
    assert world.running("api-st") == A


class Disk:
    """Whether Redis says a claim reached its append-only file in time (`Epoch.durable`)."""

    def __init__(self, answer: bool) -> None:
        self.answer, self.asked = answer, 0

    async def __call__(self, service: str) -> bool:
        self.asked += 1
        return self.answer


async def test_a_claim_not_on_disk_in_time_is_given_back_unsent(make_world) -> None:  # type: ignore[no-untyped-def]
    disk = Disk(False)
    world = await make_world(resync_seconds=0.001, durable=disk)
    await ready(world)
    await world.reconciler.reconcile("api")
    assert disk.asked == 1
    assert posts(world.heroku) == 0
    assert await world.reconciler.ledger.unsettled("api") == []

    disk.answer = True  # the next decision claims again, and sends it once
    await world.reconciler.reconcile("api")
    assert posts(world.heroku) == 1


class FirstOnly(Disk):
    """The claim is confirmed, the mark that it is being sent is not."""

    async def __call__(self, service: str) -> bool:
        self.asked += 1
        return self.asked == 1


async def test_a_sent_mark_not_on_a_replica_in_time_is_given_back_unsent(make_world) -> None:  # type: ignore[no-untyped-def]
    """A failover that loses the mark makes the claim read as never sent: it would be taken
    back and the promotion made twice (simulation, seed 305 --row 3 --rounds 4)."""
    disk = FirstOnly(True)
    world = await make_world(resync_seconds=0.001, durable=disk)
    await ready(world)
    await world.reconciler.reconcile("api")
    assert disk.asked == 2  # after the claim, and after the mark
    assert posts(world.heroku) == 0
    assert await world.reconciler.ledger.unsettled("api") == []


@pytest.mark.parametrize(
    ("scope", "until", "promotes"),
    [
        ("api", None, False),  # the service's pause
        (None, None, False),  # everything paused
        ("api", timedelta(minutes=10), False),  # a timed pause still in force
        (None, timedelta(minutes=10), False),
        ("api", timedelta(0), True),  # one that ended by Cascade's clock holds nothing
        (None, -timedelta(minutes=1), True),
    ],
)
async def test_a_pause_set_after_the_decision_stops_its_post(  # type: ignore[no-untyped-def]
    make_world, scope: str | None, until: timedelta | None, promotes: bool
) -> None:
    """The plan decided from a snapshot without a pause; the operator paused before the
    promoter sent anything: nothing is POSTed, and the next reconcile shows the pair held."""
    world = await make_world(resync_seconds=0.001)
    await ready(world)
    await deaf(world)  # A is known and old enough: the plan says promote it
    service = world.reconciler.config.services[0]
    topology = await world.reconciler.topologies.get(service)
    assert topology is not None
    snapshot = await world.observe(service)
    (candidate,) = [c for c in plan(snapshot).candidates if c.pair.target.app == "api-st"]
    assert candidate.state is PairState.READY
    now = world.clock.now
    await world.reconciler.store.set_pause(
        Pause("hold", created_at=now, until=None if until is None else now + until, service=scope)
    )
    sent = await world.reconciler.promoter.promote(snapshot, topology, [candidate])
    assert sent is promotes
    assert posts(world.heroku) == (1 if promotes else 0)
    if not promotes:
        assert await world.reconciler.ledger.unsettled("api") == []
        assert await state_of_st(world) in (PairState.BLOCKED, PairState.WAITING)
