"""A promotion's life when the Platform API refuses, fails or never answers."""

import asyncio
from datetime import timedelta

from app.heroku import HerokuClient
from app.models import PairState, PromotionState
from app.plan import plan
from app.promoter import CLAIM_GRACE
from app.sandbox.api import ErrorFault
from tests.test_reconciler import A, World, make_world

__all__ = ["make_world"]  # the fixture, shared with the reconciler's tests


async def ready(world: World) -> None:
    """A on api-qa, old enough to move to api-st."""
    await world.reconciler.reconcile("api")
    await world.sandbox.deploy("api-qa", A)
    await world.settle()
    await asyncio.sleep(0.01)
    world.clock.now += timedelta(hours=1)


async def state_of_st(world: World) -> PairState:
    service = world.reconciler.config.services[0]
    snapshot = await world.reconciler.observe(service)
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
    world.reconciler.resync_seconds = 3600
    await world.reconciler.store.mark_resync("api", 3600)
    await world.sandbox.deploy("api-qa", "b" * 40)
    await world.settle()
    world.clock.now += timedelta(hours=1)
    await world.reconciler.reconcile("api")  # A looks ready; the re-read says otherwise
    assert posts(world.heroku) == 0
    assert await world.reconciler.ledger.unsettled("api") == []
    service = world.reconciler.config.services[0]
    snapshot = await world.reconciler.observe(service)
    assert snapshot.stages[0].commit == "b" * 40
