"""A commit that proved itself moves on while its source has moved past it (`app.core.proven`)."""

from datetime import timedelta
from pathlib import Path

import pytest
import redis.asyncio as redis

from app.config.services import load_services
from app.core.models import (
    GateResult,
    GateState,
    Pair,
    PairState,
    PromotionRecord,
    PromotionState,
    Release,
    Snapshot,
)
from app.core.plan import candidate, plan
from app.gates import GATES
from app.storage import keys
from app.storage.store import Store
from tests.factories import NOW, release, snapshot, stage
from tests.sandboxed import World

QA, ST, PROD = "api-qa", "api-st", "api-prod"
DEMO = Path(__file__).parents[2] / "examples" / "demo.toml"

# qa ran O, A, then B (proven: 2 h), and runs C since 10 minutes; staging runs A.
HISTORY = {
    QA: {
        "O": NOW - timedelta(hours=5),
        "A": NOW - timedelta(hours=3),
        "B": NOW - timedelta(hours=2),
        "C": NOW - timedelta(minutes=10),
    },
}
POSITIONS = {QA: {"O": 1, "A": 2, "B": 3, "C": 4}}
B_ON_QA = release(QA, 3, "B")


def snap(
    st: str = "A", proven: Release | None = B_ON_QA, qa_version: int = 4, **overrides: object
) -> Snapshot:
    stages = (stage(QA, "C", version=qa_version), stage(ST, st), stage(PROD, "O"))
    return snapshot(
        stages,
        HISTORY,
        positions=POSITIONS,
        proven={QA: proven} if proven else {},
        **overrides,
    )


def first(snapshot: Snapshot) -> Pair:
    return snapshot.pairs()[0]


def test_a_proven_commit_moves_pinned_while_the_current_one_is_too_young() -> None:
    s = snap()
    found = candidate(s, first(s))
    assert found is not None
    assert found.state is PairState.READY
    assert found.commit == "B"
    assert found.release == B_ON_QA  # the POST pins B's release, not what qa runs now
    assert found.pair.source.commit == "C"  # the pair is still qa's as it stands
    assert "proved itself in api-qa" in found.reason


def test_the_current_commit_moves_itself_once_old_enough() -> None:
    s = snap(now=NOW + timedelta(minutes=25))
    found = candidate(s, first(s))
    assert found is not None
    assert (found.state, found.commit, found.release) == (PairState.READY, "C", s.stages[0].release)


def test_a_proven_commit_older_than_the_targets_never_moves() -> None:
    s = snap(st="B", proven=release(QA, 2, "A"))  # staging runs B, newer than A
    found = candidate(s, first(s))
    assert found is not None
    assert (found.state, found.commit) == (PairState.WAITING, "C")


def test_a_release_heroku_no_longer_holds_is_skipped_with_a_reason() -> None:
    old = Release("r3", QA, 3, B_ON_QA.status, "B", NOW - timedelta(days=31))
    s = snap(proven=old, qa_version=30)
    found = candidate(s, first(s))
    assert found is not None
    assert (found.state, found.commit) == (PairState.WAITING, "C")
    assert "Heroku no longer holds v3" in found.reason


def test_a_release_far_back_but_younger_than_30_days_still_moves() -> None:
    recent = Release("r3", QA, 3, B_ON_QA.status, "B", NOW - timedelta(days=29))
    s = snap(proven=recent, qa_version=30)
    found = candidate(s, first(s))
    assert found is not None
    assert (found.state, found.commit) == (PairState.READY, "B")


def test_a_proven_commit_still_passes_every_other_gate_for_itself() -> None:
    def closed_for_b(snapshot: Snapshot, pair: Pair) -> GateResult:
        state = GateState.CLOSED if pair.source.commit == "B" else GateState.OPEN
        return GateResult("github", state, "not on main")

    s = snap()
    found = candidate(s, first(s), (*GATES, closed_for_b))
    assert found is not None
    assert (found.state, found.commit) == (PairState.WAITING, "C")


def test_a_proven_commit_in_flight_is_shown_moving() -> None:
    claimed = PromotionRecord(
        service="api",
        source=QA,
        target=ST,
        commit="B",
        release_id=B_ON_QA.id,
        state=PromotionState.PROMOTING,
        claimed_at=NOW,
        updated_at=NOW,
    )
    s = snap(promotions={(ST, "B"): claimed}, in_flight={ST: claimed})
    found = candidate(s, first(s))
    assert found is not None
    assert (found.state, found.commit) == (PairState.PROMOTING, "B")


def test_the_next_commit_to_prove_itself_wakes_the_reconcile() -> None:
    # C opens in 20 minutes; a commit between A and C proves itself in 5
    s = snap(proven=None, proves_at={QA: NOW + timedelta(minutes=5)})
    decided = plan(s)
    assert decided.candidates[0].opens_at == NOW + timedelta(minutes=20)
    assert decided.wake_at == NOW + timedelta(minutes=5)


@pytest.fixture
def store(redis_client: "redis.Redis") -> Store:
    return Store(redis_client)


async def test_the_store_finds_the_newest_commit_that_ran_long_enough(store: Store) -> None:
    for version, commit, minutes in [(1, "A", 60), (2, "B", 40), (3, "B", 35), (4, "C", 10)]:
        await store.put_release(
            "api", release(QA, version, commit), NOW - timedelta(minutes=minutes)
        )
    cutoff = {QA: NOW - timedelta(minutes=30)}
    found = await store.history("api", {QA: ["C"]}, cutoff)
    proven = found.proven[QA]
    # B's newest release (a config-var release of the same commit); its age from its first
    assert (proven.commit, proven.id, proven.version) == ("B", f"{QA}-v3", 3)
    assert found.arrived[QA]["B"] == NOW - timedelta(minutes=40)
    assert found.positions[QA]["B"] == 2
    assert found.next_arrival[QA] == NOW - timedelta(minutes=10)  # C proves itself next
    assert (await store.history("api", {QA: ["C"]})).proven == {}  # no cutoff, none asked


async def test_of_commits_that_arrived_together_the_newest_placed_proved_itself(
    store: Store,
) -> None:
    at = NOW - timedelta(hours=1)  # a history read at onboarding: every commit arrived then
    ran = {c: release(QA, v, c) for c, v in [("A", 1), ("B", 2), ("C", 3)]}
    await store.add_history("api", QA, dict.fromkeys(ran, at), {"A": 1, "B": 2, "C": 3}, ran=ran)
    found = await store.history("api", {QA: ["A"]}, {QA: NOW})
    assert found.proven[QA].commit == "C"
    assert await store.redis.hlen(keys.ran("api", QA)) == 3


async def test_a_proven_release_is_promoted_pinned_by_its_id(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(resync_seconds=0.001)
    await world.reconciler.reconcile("api")
    proven = await world.sandbox.deploy("api-qa", "b" * 40)
    await world.settle()
    await world.reconciler.reconcile("api")  # B runs on qa from now
    world.clock.now += timedelta(minutes=20)
    await world.sandbox.deploy("api-qa", "c" * 40)
    await world.settle()
    await world.reconciler.reconcile("api")  # C runs from now: B has 20 minutes, needs 30
    assert world.sandbox.world.promotions == []

    world.clock.now += timedelta(minutes=11)  # B has run 31 minutes in qa, C 11
    outcome = await world.reconciler.reconcile("api")
    (promotion,) = world.sandbox.world.promotions
    assert promotion.request["source"]["release"]["id"] == proven["id"]
    assert outcome.plan is not None
    moving = outcome.plan.candidates[0]
    assert (moving.commit, moving.pair.source.commit) == ("b" * 40, "c" * 40)
    await world.settle()
    await world.reconciler.reconcile("api")
    assert world.running("api-st") == "b" * 40


async def test_the_demo_keeps_every_stage_moving(make_world) -> None:  # type: ignore[no-untyped-def]
    """`make serve`'s demo, in virtual time: a commit on the first stage every 30 s and 20-30 s
    of age per stage. Before proven releases, the last stage got nothing in four minutes."""
    config = load_services(DEMO)
    world: World = await make_world(resync_seconds=0.001, config=config)
    stages = next(s for s in config.services if s.name == "api").stages
    received: dict[str, set[str]] = {app: set() for app in stages}
    start = world.clock.now
    for second in range(0, 240, 2):
        world.clock.now = start + timedelta(seconds=second)
        if second % 30 == 0:
            await world.sandbox.deploy(stages[0])
        await world.settle()
        await world.reconciler.reconcile("api")
        for app in stages:
            received[app].add(world.running(app))
    counts = {app: len(commits) - 1 for app, commits in received.items()}  # less the first
    assert all(count >= 3 for count in counts.values()), counts
