from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from app.core.models import (
    GateResult,
    GateState,
    Pair,
    PairState,
    PromotionRecord,
    PromotionState,
    ReleaseStatus,
    Signals,
    Snapshot,
    StageView,
)
from app.core.plan import FOLLOW_FIRST, candidate, follow_at, plan
from app.gates import Gate
from app.signals.github.facts import GitHubFacts, Relation
from tests.factories import NOW, pause, release, snapshot, stage

QA, ST, PROD = "api-qa", "api-st", "api-prod"

# O reached qa first, then A, then B; the staging stage saw O, then A.
HISTORY = {
    QA: {
        "O": NOW - timedelta(hours=5),
        "A": NOW - timedelta(hours=3),
        "B": NOW - timedelta(hours=2),
    },
    ST: {"O": NOW - timedelta(hours=4), "A": NOW - timedelta(hours=2, minutes=30)},
}
# The same order in the apps' releases: O at v1, A at v2, B at v3 (positions, `app.core.order`).
POSITIONS = {QA: {"O": 1, "A": 2, "B": 3}, ST: {"O": 1, "A": 2}}


def snap(
    qa: str | None,
    st: str | None,
    prod: str | None = "O",
    history: dict[str, dict[str, datetime]] | None = None,
    positions: dict[str, dict[str, int]] | None = None,
    **overrides: object,
) -> Snapshot:
    stages = (stage(QA, qa), stage(ST, st), stage(PROD, prod))
    known = POSITIONS if positions is None else positions
    return snapshot(stages, HISTORY if history is None else history, positions=known, **overrides)


def first(snapshot: Snapshot) -> Pair:
    return snapshot.pairs()[0]


def record(state: PromotionState, error: str | None = None) -> PromotionRecord:
    return PromotionRecord(
        service="api",
        source=QA,
        target=ST,
        commit="A",
        release_id="api-qa-v1",
        state=state,
        claimed_at=NOW - timedelta(minutes=1),
        updated_at=NOW - timedelta(minutes=1),
        error=error,
    )


def gate(state: GateState, opens_at: datetime | None = None, name: str = "fake") -> Gate:
    def check(snapshot: Snapshot, pair: Pair) -> GateResult:
        return GateResult(name, state, f"{name} is {state}", opens_at)

    return check


def test_stages_that_agree_give_no_candidate() -> None:
    s = snap("O", "O", "O")
    assert candidate(s, first(s)) is None
    assert plan(s).candidates == ()


def test_differing_pair_with_every_gate_open_is_ready() -> None:
    result = plan(snap("A", "O"))
    (only,) = result.candidates
    assert (only.pair.index, only.commit, only.state) == (0, "A", PairState.READY)
    assert [g.name for g in only.gates] == ["allow", "age"]
    assert result.ready == (only,)
    assert result.wake_at is None


def test_closed_age_waits_and_wakes_when_it_opens() -> None:
    history = {QA: {**HISTORY[QA], "C": NOW - timedelta(minutes=10)}, ST: HISTORY[ST]}
    positions = {QA: {**POSITIONS[QA], "C": 4}, ST: POSITIONS[ST]}
    result = plan(snap("C", "O", history=history, positions=positions))
    (only,) = result.candidates
    assert only.state is PairState.WAITING
    assert only.opens_at == NOW + timedelta(minutes=20)
    assert result.wake_at == NOW + timedelta(minutes=20)


def test_pause_without_until_blocks() -> None:
    (only,) = plan(snap("A", "O", global_pause=pause("deploy freeze"))).candidates
    assert only.state is PairState.BLOCKED
    assert only.opens_at is None
    assert "deploy freeze" in only.reason


@pytest.mark.parametrize(
    ("suspects", "state"),
    [
        ({"A": "auto-halt: alert X started firing 5s after A reached api-st"}, PairState.BLOCKED),
        ({}, PairState.READY),
    ],
    ids=["suspect", "retried"],
)
def test_a_suspect_commit_moves_no_further(suspects: dict[str, str], state: PairState) -> None:
    (only,) = plan(snap("A", "O", suspects=suspects)).candidates
    assert only.state is state
    if suspects:
        assert only.reason == (
            "A is suspect (auto-halt: alert X started firing 5s after A reached api-st):"
            " POST /retry to move it on"
        )


def test_unknown_source_commit_blocks() -> None:
    stages = (StageView(QA, release(QA, 1, None)), stage(ST, "O"), stage(PROD, "O"))
    (only,) = plan(snapshot(stages, HISTORY)).candidates
    assert (only.commit, only.state) == (None, PairState.BLOCKED)


@pytest.mark.parametrize(
    ("container", "stages", "app"),
    [
        ({QA}, (StageView(QA, release(QA, 1, None)), stage(ST, "O"), stage(PROD, "O")), QA),
        ({ST}, (stage(QA, "A"), StageView(ST, release(ST, 1, None)), stage(PROD, "A")), ST),
    ],
    ids=["source", "target"],
)
def test_an_app_on_the_container_stack_is_explained_not_unknown(
    container: set[str], stages: tuple[StageView, ...], app: str
) -> None:
    found = plan(snapshot(stages, HISTORY, container_stack=frozenset(container))).candidates
    assert found  # every pair the app is in, and only those
    assert all(app in (c.pair.source.app, c.pair.target.app) for c in found)
    for c in found:
        assert c.state is PairState.BLOCKED
        assert c.reason.startswith(f"{app} is on the container stack: Heroku's pipeline promotions")
        assert c.gates == ()  # nothing to wait for: no gate is asked


@pytest.mark.parametrize(
    "history",
    [{QA: {"O": NOW - timedelta(hours=5)}}, {}],
    ids=["source-commit-arrival-unknown", "no-history-at-all"],
)
def test_unknown_arrival_blocks_on_age(history: dict[str, dict[str, datetime]]) -> None:
    (only,) = plan(snap("A", "O", history=history)).candidates
    assert only.state is PairState.BLOCKED
    age = next(g for g in only.gates if g.name == "age")
    assert age.state is GateState.UNKNOWN


@pytest.mark.parametrize("where", [QA, ST], ids=["pending-on-source", "pending-on-target"])
def test_pending_release_waits(where: str) -> None:
    pending = release(where, 9, "Z", ReleaseStatus.PENDING)
    stages = tuple(
        replace(stage(app, commit), pending=pending if app == where else None)
        for app, commit in ((QA, "A"), (ST, "O"), (PROD, "O"))
    )
    (only,) = plan(snapshot(stages, HISTORY)).candidates
    assert only.state is PairState.WAITING
    assert f"v9 is being released on {where}" in only.reason


def test_target_running_a_hotfix_is_left_alone() -> None:
    (only,) = plan(snap("A", "H", prod="H")).candidates
    assert only.state is PairState.BLOCKED
    assert "hotfix" in only.reason


@pytest.mark.parametrize(
    ("relation", "held"),
    [(Relation.AHEAD, False), (Relation.DIVERGED, True), (Relation.BEHIND, True), (None, True)],
    ids=["github-ahead", "github-diverged", "github-behind", "github-unknown"],
)
def test_github_saying_ahead_lets_a_commit_that_never_ran_in_the_source_be_passed(
    relation: Relation | None, held: bool
) -> None:
    # prod runs H, which never ran in st (a direct deploy later merged into main, say)
    facts = {("A", "H"): GitHubFacts(on_branch=True, relation=relation)}
    s = snap("A", "A", prod="H", signals=Signals(github=facts))
    c = candidate(s, s.pairs()[1])
    assert c is not None
    assert ("hotfix" in c.reason) is held
    assert (c.state is PairState.BLOCKED) is held


def test_never_promotes_backwards() -> None:
    s = snap("O", "A")
    c = candidate(s, first(s))
    assert c is not None
    assert c.state is PairState.BLOCKED
    assert "backwards" in c.reason


def test_order_is_the_release_order_not_when_cascade_heard_of_it() -> None:
    # O was heard of last in qa (a late webhook, a rollback after a trim), yet ran there first.
    heard = {QA: {**HISTORY[QA], "O": NOW - timedelta(hours=1)}, ST: HISTORY[ST]}
    (only,) = plan(snap("O", "A", prod="A", history=heard)).candidates
    assert (only.commit, only.state) == ("O", PairState.BLOCKED)
    assert "backwards" in only.reason


def test_a_source_commit_of_unknown_order_is_blocked() -> None:
    positions = {QA: {"O": 1}, ST: POSITIONS[ST]}  # A ran in qa, but where is not known
    (only,) = plan(snap("A", "O", positions=positions)).candidates
    assert only.state is PairState.BLOCKED
    assert "order of A and O in api-qa's releases is not known" in only.reason


def test_failed_promotion_record_fails_the_pair() -> None:
    promotions = {(ST, "A"): record(PromotionState.FAILED, error="boom")}
    (only,) = plan(snap("A", "O", promotions=promotions)).candidates
    assert only.state is PairState.FAILED
    assert "boom" in only.reason


@pytest.mark.parametrize(
    "state", [PromotionState.CLAIMED, PromotionState.PROMOTING], ids=["claimed", "promoting"]
)
def test_record_in_flight_is_followed(state: PromotionState) -> None:
    result = plan(snap("A", "O", promotions={(ST, "A"): record(state)}))
    (only,) = result.candidates
    assert only.state is PairState.PROMOTING
    assert result.wake_at == NOW + timedelta(seconds=6)  # claimed a minute ago: a tenth


@pytest.mark.parametrize(
    ("age", "wait"),
    [
        (timedelta(0), FOLLOW_FIRST),
        (timedelta(minutes=2), timedelta(seconds=12)),
        (timedelta(hours=1), timedelta(seconds=30)),
    ],
    ids=["just-sent", "a-tenth-of-its-age", "at-most-30s"],
)
def test_a_promotion_in_flight_is_followed_less_often_as_it_ages(
    age: timedelta, wait: timedelta
) -> None:
    assert follow_at(NOW, NOW - age) == NOW + wait


def test_succeeded_record_with_target_on_another_commit_is_not_followed() -> None:
    # A was promoted to staging, then staging was rolled back to O.
    result = plan(snap("A", "O", promotions={(ST, "A"): record(PromotionState.SUCCEEDED)}))
    (only,) = result.candidates
    assert only.state is PairState.BLOCKED
    assert "only once" in only.reason
    assert result.wake_at is None


def test_several_commits_in_flight_give_one_ready_candidate_per_pair() -> None:
    result = plan(snap("B", "A", "O"))
    assert [(c.pair.index, c.commit, c.state) for c in result.candidates] == [
        (0, "B", PairState.READY),
        (1, "A", PairState.READY),
    ]


def test_worst_gate_wins_unknown_over_closed() -> None:
    gates = (gate(GateState.UNKNOWN, name="u"), gate(GateState.CLOSED, NOW + timedelta(hours=1)))
    s = snap("A", "O")
    c = candidate(s, first(s), gates)
    assert c is not None
    assert c.state is PairState.BLOCKED
    assert c.opens_at is None


def test_custom_gates_are_used_and_none_is_left_out() -> None:
    def not_applicable(snapshot: Snapshot, pair: Pair) -> None:
        return None

    (only,) = plan(snap("A", "O"), (gate(GateState.OPEN), not_applicable)).candidates
    assert only.state is PairState.READY
    assert [g.name for g in only.gates] == ["fake"]


def test_a_claim_whose_answer_never_came_shows_its_error() -> None:
    promotions = {(ST, "A"): record(PromotionState.CLAIMED, error="ReadTimeout")}
    (only,) = plan(snap("A", "O", promotions=promotions)).candidates
    assert only.state is PairState.PROMOTING
    assert only.reason.endswith("(claimed), last error: ReadTimeout")


def test_another_commit_in_flight_into_the_target_holds_the_pair_and_follows_it() -> None:
    older = replace(record(PromotionState.PROMOTING), commit="A")
    result = plan(snap("B", "O", in_flight={ST: older}))
    (only,) = result.candidates
    assert (only.commit, only.state) == ("B", PairState.PROMOTING)
    assert "waiting for the promotion of A to api-st" in only.reason
    assert result.wake_at == NOW + timedelta(seconds=6)
