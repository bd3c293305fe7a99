"""The reconciler against the sandbox platform (in-process) and a real Redis, time injected."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as redis

from app.config.services import Freeze
from app.core.models import Candidate, PairState, Pause
from app.engine.history import HISTORY_DEPTH
from app.engine.reconcile import Outcome
from app.storage import keys
from app.storage.locks import Locks
from app.storage.store import Store
from tests.factories import release
from tests.sandboxed import STAGES, World

A = "a" * 40


async def test_an_unchanged_pipeline_costs_no_call_after_the_first_read(make_world) -> None:  # type: ignore[no-untyped-def]
    world = await make_world()
    await world.reconciler.reconcile("api")
    first = sum(world.heroku.calls.values())
    # pipeline + couplings + latest releases, and the history of each source stage once
    assert world.heroku.calls["GET /pipelines/{id}/latest-releases"] == 1
    assert world.heroku.calls["GET /apps/{app}/releases"] == len(STAGES) - 1
    for _ in range(10):
        await world.reconciler.reconcile("api")
    assert sum(world.heroku.calls.values()) == first


async def test_a_due_resync_costs_one_call(make_world) -> None:  # type: ignore[no-untyped-def]
    world = await make_world(resync_seconds=0.001)
    await world.reconciler.reconcile("api")
    before = world.heroku.calls.copy()
    await asyncio.sleep(0.01)
    await world.reconciler.reconcile("api")
    assert world.heroku.calls - before == {"GET /pipelines/{id}/latest-releases": 1}


async def test_age_gate_then_promotion_pinned_and_once(make_world) -> None:  # type: ignore[no-untyped-def]
    world = await make_world(resync_seconds=0.001)
    await world.reconciler.reconcile("api")
    await world.sandbox.deploy("api-qa", A)
    await world.settle()
    await asyncio.sleep(0.01)
    outcome = await world.reconciler.reconcile("api")
    assert outcome.plan is not None
    (waiting,) = outcome.plan.candidates
    assert waiting.state is PairState.WAITING
    assert outcome.wake_at == waiting.opens_at
    assert world.sandbox.world.promotions == []

    world.clock.now += timedelta(minutes=31)
    await asyncio.sleep(0.01)
    outcome = await world.reconciler.reconcile("api")
    (promotion,) = world.sandbox.world.promotions
    assert promotion.request["source"]["release"]["id"] == promotion.source.id
    assert outcome.wake_at is not None  # follow the promotion shortly

    for _ in range(3):  # repeated reconciles never promote the same commit again
        await world.settle()
        await asyncio.sleep(0.01)
        await world.reconciler.reconcile("api")
    assert world.running("api-st") == A
    assert (
        len([p for p in world.sandbox.world.promotions if p.targets[0].app.name == "api-st"]) == 1
    )


async def test_a_fir_pipeline_promotes_its_oci_image_reading_each_image_once(make_world) -> None:  # type: ignore[no-untyped-def]
    world = await make_world(resync_seconds=0.001, fir=True)
    await world.reconciler.reconcile("api")
    await world.sandbox.deploy("api-qa", A)
    await world.settle()
    await asyncio.sleep(0.01)
    world.clock.now += timedelta(minutes=31)
    await world.reconciler.reconcile("api")  # learns A; it has run 31 min by the next look
    world.clock.now += timedelta(minutes=31)
    await asyncio.sleep(0.01)
    await world.reconciler.reconcile("api")
    (promotion,) = world.sandbox.world.promotions
    assert promotion.targets[0].app.name == "api-st"
    await world.settle()
    await asyncio.sleep(0.01)
    await world.reconciler.reconcile("api")
    assert world.running("api-st") == A
    # the start's image and A's, each read once: a promotion's copy is the same image
    assert world.heroku.calls["GET /apps/{app}/oci-images/{id}"] == 2
    assert world.heroku.calls["GET /apps/{app}/slugs/{id}"] == 0


async def test_an_app_on_the_container_stack_is_explained_and_its_stack_asked_once(  # type: ignore[no-untyped-def]
    make_world,
) -> None:
    world = await make_world(container=("api-qa",))
    for _ in range(3):
        outcome = await world.reconciler.reconcile("api")
    assert outcome.plan is not None
    (blocked,) = outcome.plan.candidates
    assert blocked.state is PairState.BLOCKED
    assert blocked.reason.startswith("api-qa is on the container stack")
    assert world.heroku.calls["GET /apps/{app}"] == 1  # not again on each reconcile


async def test_a_stage_missing_from_the_pipeline_is_reported_not_guessed(make_world) -> None:  # type: ignore[no-untyped-def]
    world = await make_world(stages=("api-qa", "api-nope"))
    outcome = await world.reconciler.reconcile("api")
    assert outcome.plan is None
    service = world.reconciler.config.services[0]
    snapshot, _ = await world.reconciler.snapshots.read(service, None, (), fetch=True)
    assert snapshot.problem is not None
    assert "api-nope" in snapshot.problem
    assert world.sandbox.world.promotions == []


async def test_a_freeze_window_holds_a_ready_commit_and_its_end_wakes_the_reconcile(
    make_world,
) -> None:  # type: ignore[no-untyped-def]
    # a freeze that started on the minute and lasts two hours, from wherever the clock is
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    freeze = Freeze(
        f"{start.minute} {start.hour} * * *", timedelta(hours=2), "UTC", "release party"
    )
    world = await make_world(resync_seconds=0.001, freezes=(freeze,))
    await world.reconciler.reconcile("api")
    await world.sandbox.deploy("api-qa", A)
    await world.settle()
    await asyncio.sleep(0.01)
    await world.reconciler.reconcile("api")  # A is seen running
    world.clock.now = start + timedelta(minutes=45)  # the age gate is open, the freeze is not
    await asyncio.sleep(0.01)
    outcome = await world.reconciler.reconcile("api")
    assert outcome.plan is not None
    (held,) = outcome.plan.candidates
    assert held.state is PairState.WAITING
    assert "everything frozen until" in held.reason
    assert "release party" in held.reason
    assert outcome.wake_at == start + timedelta(hours=2)
    assert world.sandbox.world.promotions == []

    world.clock.now = start + timedelta(hours=2)
    await world.reconciler.reconcile("api")
    (promotion,) = world.sandbox.world.promotions
    assert promotion.targets[0].app.name == "api-st"


async def settle(world: World) -> Outcome:
    """Reconcile until the service is settled and known so: the first run folds the pipeline in."""
    await world.reconciler.reconcile("api")
    outcome = await world.reconciler.reconcile("api")
    assert outcome.settled is True  # every stage runs the same commit
    return outcome


async def test_a_settled_service_is_looked_at_without_its_lock(  # type: ignore[no-untyped-def]
    make_world, redis_client: "redis.Redis"
) -> None:
    world = await make_world()
    first = await settle(world)
    async with Locks(redis_client).hold("api") as elsewhere:  # another process's reconcile
        assert elsewhere.held is True
        again = await world.reconciler.reconcile("api")
    assert again.settled is True
    assert again.plan is not None
    assert again.plan.candidates == ()
    assert again.shown == first.shown


async def test_a_release_folded_here_takes_the_lock_at_once(  # type: ignore[no-untyped-def]
    make_world, redis_client: "redis.Redis"
) -> None:
    world = await make_world()
    await settle(world)
    await world.reconciler.store.put_release("api", release("api-qa", 100, A), world.clock())
    async with Locks(redis_client).hold("api"):
        busy = await world.reconciler.reconcile("api")
    assert busy.plan is None  # it went for the lock (held elsewhere) without looking first
    outcome = await world.reconciler.reconcile("api")
    assert outcome.plan is not None
    assert [c.commit for c in outcome.plan.candidates] == [A]
    assert outcome.settled is False


async def test_the_status_page_is_read_in_the_round_trip_that_takes_the_lock(  # type: ignore[no-untyped-def]
    make_world, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await make_world()
    await settle(world)
    await world.reconciler.store.put_release(
        "api", release("api-qa", 100, A), world.clock()
    )  # a pair moves
    incidents = world.reconciler.views.incidents
    given: list[object] = []
    read_itself = incidents.gather

    async def gather(*args: Any, **kwargs: Any) -> Any:
        given.append(kwargs.get("kept"))
        return await read_itself(*args, **kwargs)

    monkeypatch.setattr(incidents, "gather", gather)
    outcome = await world.reconciler.reconcile("api")
    assert outcome.plan is not None
    assert [c.commit for c in outcome.plan.candidates] == [A]
    assert len(given) == 1
    assert given[0] is not None  # read in the lock's batch: no round trip of its own


@pytest.mark.parametrize("news", ["release folded by another process", "gate state to clear"])
async def test_what_unsettles_a_service_elsewhere_is_found_and_taken_the_locked_way(  # type: ignore[no-untyped-def]
    make_world, redis_client: "redis.Redis", news: str
) -> None:
    world = await make_world()
    await settle(world)
    if news == "gate state to clear":
        await redis_client.hset(keys.gates("api"), "api-st", "gone|waiting|age=closed")
    else:
        await Store(redis_client).put_release("api", release("api-qa", 100, A), world.clock())
    async with Locks(redis_client).hold("api"):
        busy = await world.reconciler.reconcile("api")
    assert busy.plan is None  # it looked, found something to do, and went for the lock
    outcome = await world.reconciler.reconcile("api")
    assert outcome.plan is not None
    if news == "gate state to clear":
        assert await redis_client.hgetall(keys.gates("api")) == {}
        assert outcome.settled is True
    else:
        assert [c.commit for c in outcome.plan.candidates] == [A]


async def test_a_resync_learns_the_release_that_runs_behind_a_failed_one(  # type: ignore[no-untyped-def]
    make_world, redis_client: "redis.Redis"
) -> None:
    world = await make_world()
    await world.reconciler.reconcile("api")
    await world.sandbox.deploy("api-qa", A)  # its webhook lost
    await world.settle()
    await world.sandbox.deploy("api-qa", "b" * 40, succeed=False)
    await world.settle()
    await redis_client.delete(keys.resynced("api"))  # the resync is due
    await world.reconciler.reconcile("api")  # reads only each app's newest release: failed
    service = world.reconciler.config.services[0]
    snapshot = await world.observe(service)
    assert snapshot.stages[0].commit == A


# Never backwards (issue 15, row 2): the order of two commits in the source comes from Heroku's
# own facts (release versions, rollbacks), never from when Cascade heard of them.
OLD, NEW = "0" * 40, "f" * 40
PAIR = ("api-qa", "api-st")  # one pair: nothing else is promoted meanwhile


async def until_promotable(world: World, after: timedelta = timedelta(hours=1)) -> Outcome:
    """Let the sandbox finish, a resync fall due and the age gate open; reconcile once."""
    await world.settle()
    await asyncio.sleep(0.01)
    world.clock.now += after
    return await world.reconciler.reconcile("api")


def staging_candidate(outcome: Outcome) -> Candidate:
    assert outcome.plan is not None
    (found,) = [c for c in outcome.plan.candidates if c.pair.target.app == "api-st"]
    return found


async def test_a_rollback_to_a_commit_before_the_history_read_at_onboarding_is_not_promoted(
    make_world,
) -> None:  # type: ignore[no-untyped-def]
    world = await make_world(PAIR, resync_seconds=0.001)
    await world.sandbox.deploy("api-qa", OLD)  # v2
    for i in range(HISTORY_DEPTH - 1):  # OLD is older than the releases read at onboarding
        await world.sandbox.deploy("api-qa", f"c{i:039x}")
    await world.sandbox.deploy("api-qa", NEW)
    await world.sandbox.deploy("api-st", NEW)
    await world.settle()
    await world.reconciler.reconcile("api")
    await world.sandbox.rollback("api-qa", 2)  # qa runs OLD again

    blocked = staging_candidate(await until_promotable(world))

    assert world.running("api-qa") == OLD
    assert world.running("api-st") == NEW
    assert (blocked.commit, blocked.state) == (OLD, PairState.BLOCKED)
    assert "backwards" in blocked.reason


async def test_a_target_running_a_commit_older_than_the_history_is_promoted_over(
    make_world,
) -> None:  # type: ignore[no-untyped-def]
    """Not taken for a hotfix: the source's releases are read further back, once, and find
    it there (issue 15, row 2: it was left alone for ever)."""
    world = await make_world(PAIR, resync_seconds=0.001)
    await world.sandbox.deploy("api-qa", OLD)  # v2
    await world.sandbox.deploy("api-st", OLD)
    for i in range(HISTORY_DEPTH - 1):  # OLD is older than the releases read at onboarding
        await world.sandbox.deploy("api-qa", f"c{i:039x}")
    await world.sandbox.deploy("api-qa", NEW)
    await world.settle()
    await world.reconciler.reconcile("api")
    reads = world.heroku.calls["GET /apps/{app}/releases"]

    ready = staging_candidate(await until_promotable(world))
    await world.reconciler.reconcile("api")

    assert (ready.commit, ready.state) == (NEW, PairState.READY)
    assert world.heroku.calls["GET /apps/{app}/releases"] == reads  # read back once, not again


async def test_a_commit_looked_up_further_back_is_not_asked_of_redis_again(
    make_world, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A target's commit its source never ran (a hotfix) stays unplaced after its look-up:
    each reconcile asked Redis again whether it had been looked up, a round trip per app
    (`make bench`: a tick over 1,000 services 3x slower)."""
    world = await make_world(PAIR, resync_seconds=0.001)
    for i in range(HISTORY_DEPTH):  # more than the history reads: it is not whole
        await world.sandbox.deploy("api-qa", f"c{i:039x}")
    await world.sandbox.deploy("api-qa", NEW)
    await world.sandbox.deploy("api-st", "e" * 40)  # a hotfix: never ran on qa
    await world.settle()
    await world.reconciler.reconcile("api")
    reads = world.heroku.calls["GET /apps/{app}/releases"]
    asked: list[tuple[object, ...]] = []
    looked_up = world.reconciler.store.looked_up

    async def counting(*args: object) -> tuple[set[str], bool]:
        asked.append(args)
        return await looked_up(*args)

    monkeypatch.setattr(world.reconciler.store, "looked_up", counting)
    for _ in range(3):
        await world.reconciler.reconcile("api")
    assert asked == []
    assert world.heroku.calls["GET /apps/{app}/releases"] == reads
    world.reconciler.forget_all()  # Redis lost Cascade's data: asked again
    await world.reconciler.reconcile("api")
    assert asked != []


async def test_an_old_commit_deployed_again_past_the_history_is_not_promoted(
    make_world,
) -> None:  # type: ignore[no-untyped-def]
    """A fresh deploy of an old commit (a `git push` of it, not Heroku's rollback) looks
    newest among the releases read at onboarding when its first run is older than them:
    the source's releases are read further back before it is promoted (simulation seed 3,
    `--row 5 --steps 200`: it went backwards)."""
    world = await make_world(PAIR, resync_seconds=0.001)
    await world.sandbox.deploy("api-qa", OLD)  # v2
    await world.sandbox.deploy("api-st", OLD)
    for i in range(HISTORY_DEPTH):  # OLD's first run is older than the releases read
        await world.sandbox.deploy("api-qa", f"c{i:039x}")
    await world.sandbox.deploy("api-qa", NEW)
    await world.sandbox.deploy("api-st", NEW)
    await world.sandbox.deploy("api-qa", OLD)  # deployed again: the newest release of qa
    await world.settle()
    await world.reconciler.reconcile("api")

    blocked = staging_candidate(await until_promotable(world))

    assert world.running("api-st") == NEW
    assert (blocked.commit, blocked.state) == (OLD, PairState.BLOCKED)
    assert "backwards" in blocked.reason


async def test_a_rollback_to_a_commit_trimmed_from_the_history_is_not_promoted(
    make_world,
) -> None:  # type: ignore[no-untyped-def]
    world = await make_world(PAIR, resync_seconds=0.001)
    await world.sandbox.deploy("api-qa", OLD)  # v2
    await world.settle()
    await asyncio.sleep(1)  # Heroku's times are whole seconds: NEW's is later than OLD's
    await world.sandbox.deploy("api-qa", NEW)  # v3
    await world.sandbox.deploy("api-st", NEW)
    await world.settle()
    await world.reconciler.reconcile("api")  # OLD and NEW are in qa's history
    # More commits ran in qa since than its history keeps (their releases are older news
    # than v3 to the stage's view): OLD, the first to have arrived, is trimmed.
    between = world.sandbox.world.app("api-qa").releases[1].created_at.replace(microsecond=0)
    for i in range(keys.HISTORY_MAXLEN):
        at = between + timedelta(microseconds=i + 1)
        filler = release("api-qa", 1, f"c{i:039x}", created_at=at)
        await world.reconciler.store.put_release("api", filler, at)
    await world.sandbox.rollback("api-qa", 2)  # qa runs OLD again

    blocked = staging_candidate(await until_promotable(world))

    assert world.running("api-st") == NEW
    assert (blocked.commit, blocked.state) == (OLD, PairState.BLOCKED)
    assert "backwards" in blocked.reason


async def test_a_late_webhook_does_not_make_an_older_commit_look_newer(make_world) -> None:  # type: ignore[no-untyped-def]
    world = await make_world(PAIR, resync_seconds=0.001)
    await world.sandbox.deploy("api-qa", OLD)  # v2
    await world.sandbox.deploy("api-qa", NEW)  # v3
    await world.sandbox.deploy("api-st", NEW)
    await world.settle()
    qa = world.sandbox.world.app("api-qa").releases
    built = qa[1].created_at
    store = world.reconciler.store
    # NEW's webhook arrives at once; OLD's, sent first, arrives half an hour late.
    await store.put_release("api", release("api-qa", 3, NEW, created_at=qa[2].created_at), built)
    late = built + timedelta(minutes=30)
    await store.put_release("api", release("api-qa", 2, OLD, created_at=built), late)
    await world.reconciler.reconcile("api")
    await world.sandbox.deploy("api-qa", OLD)  # OLD built and released again (v4)

    blocked = staging_candidate(await until_promotable(world))

    assert world.running("api-st") == NEW
    assert (blocked.commit, blocked.state) == (OLD, PairState.BLOCKED)
    assert "backwards" in blocked.reason


async def test_a_pipeline_re_created_under_the_same_name_is_read_again(make_world) -> None:  # type: ignore[no-untyped-def]
    """The sandbox restarted (or the pipeline and its apps were re-created): every cached id
    now answers 404, and the new apps' versions start below those Cascade saw."""
    old = await make_world(resync_seconds=0.001)
    for app in STAGES:  # the old apps ran several releases each
        for _ in range(3):
            await old.sandbox.deploy(app)
    await old.settle()
    await old.reconciler.reconcile("api")

    new = await make_world(resync_seconds=0.001)  # a restarted Cascade, on the same Redis
    new.clock.now = old.clock.now
    await new.sandbox.deploy("api-qa", A)
    await new.settle()
    await asyncio.sleep(0.01)
    await new.reconciler.reconcile("api")
    new.clock.now += timedelta(minutes=31)
    await asyncio.sleep(0.01)
    await new.reconciler.reconcile("api")

    (promotion,) = new.sandbox.world.promotions
    assert [t.app.name for t in promotion.targets] == ["api-st"]
    assert promotion.source.slug.commit == A
    topology = new.reconciler.topologies.known["api"]
    assert topology.pipeline_id == new.sandbox.world.pipeline("api").id


async def test_resynced_ages_count_by_cascades_clock_when_herokus_runs_ahead(make_world) -> None:  # type: ignore[no-untyped-def]
    """A release learnt from a resync arrived no later than Cascade's `now`: Heroku's
    `created_at`, an hour ahead of Cascade's clock here, must not hold the age gate an hour."""
    world = await make_world(resync_seconds=0.001)
    world.clock.now -= timedelta(hours=1)  # Heroku's clock (the sandbox's) runs an hour ahead
    await world.reconciler.reconcile("api")
    await world.sandbox.deploy("api-qa", A)  # no webhook: only the resync learns of it
    await world.settle()
    await asyncio.sleep(0.01)
    await world.reconciler.reconcile("api")

    world.clock.now += timedelta(minutes=31)  # min_age is 30 minutes
    await asyncio.sleep(0.01)
    await world.reconciler.reconcile("api")

    (promotion,) = world.sandbox.world.promotions
    assert promotion.targets[0].app.name == "api-st"


async def test_a_timed_pause_ends_by_cascades_clock_not_redis(make_world) -> None:  # type: ignore[no-untyped-def]
    """Redis's clock runs an hour ahead of Cascade's here: the pause must hold until its
    `until` by Cascade's clock, which the allow gate reads."""
    world = await make_world(resync_seconds=0.001)
    world.clock.now -= timedelta(hours=1)
    await world.reconciler.reconcile("api")
    await world.sandbox.deploy("api-qa", A)
    await world.settle()
    arrived = world.clock.now - timedelta(minutes=31)  # the age gate is open
    await world.reconciler.store.redis.zadd(keys.history("api", "api-qa"), {A: arrived.timestamp()})
    until = world.clock.now + timedelta(minutes=10)  # an hour in the past for Redis
    await world.reconciler.store.set_pause(
        Pause("hold", created_at=world.clock.now, until=until, service="api")
    )
    await asyncio.sleep(0.01)
    outcome = await world.reconciler.reconcile("api")
    assert world.sandbox.world.promotions == []
    assert outcome.plan is not None
    (held,) = outcome.plan.candidates
    assert held.state is PairState.WAITING
    assert outcome.wake_at == until

    world.clock.now = until
    await world.reconciler.reconcile("api")
    (promotion,) = world.sandbox.world.promotions
    assert promotion.targets[0].app.name == "api-st"


async def test_a_promotion_the_re_created_pipeline_never_had_does_not_hold_its_target(
    make_world,
) -> None:  # type: ignore[no-untyped-def]
    """Cascade stopped while a promotion was on its way (its record unsettled), and the
    pipeline came back with new ids: Heroku answers 404 for that promotion, so it is failed,
    and the target, which takes one promotion at a time, takes the next commit."""
    old = await make_world(resync_seconds=0.001)
    await old.reconciler.reconcile("api")
    await old.sandbox.deploy("api-qa", A)
    await old.settle()
    await asyncio.sleep(0.01)
    await old.reconciler.reconcile("api")  # A is seen running
    old.sandbox.copy_seconds = 3600  # the promotion never finishes in the old world
    old.clock.now += timedelta(minutes=31)
    await asyncio.sleep(0.01)
    await old.reconciler.reconcile("api")
    (unsettled,) = await old.reconciler.ledger.unsettled("api")
    assert unsettled.promotion_id is not None

    new = await make_world(resync_seconds=0.001)  # a restarted Cascade, on the same Redis
    new.clock.now = old.clock.now
    b = "b" * 40
    await new.sandbox.deploy("api-qa", b)
    await new.settle()
    await asyncio.sleep(0.01)
    await new.reconciler.reconcile("api")
    new.clock.now += timedelta(minutes=31)
    await asyncio.sleep(0.01)
    await new.reconciler.reconcile("api")

    first = new.sandbox.world.promotions[0]  # (then on to api-prod: B is old enough there too)
    assert (first.source.slug.commit, first.targets[0].app.name) == (b, "api-st")
    failed = [e for e in await new.reconciler.audit.read("api", 100) if e["commit"] == A]
    assert [e["kind"] for e in failed][:1] == ["promotion.failed"]
    assert "Heroku no longer knows promotion" in failed[0]["message"]
