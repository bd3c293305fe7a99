"""The fleet table's rules (`app.api.fleet`): one status a service, worst first; commit colours
that stay apart; stage headings. Pure: `/status` objects in, words and numbers out."""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from app.api.fleet import NEEDS_ME, Kind, columns, counts, hue, status
from app.api.schemas import GateOut, PauseOut, PromotionOut, ServiceOut, StageOut

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
A, B = "a1" * 20, "b2" * 20


def gate(name: str, state: str, opens_in: float | None = None) -> GateOut:
    opens_at = NOW + timedelta(seconds=opens_in) if opens_in is not None else None
    return GateOut(name=name, state=state, reason=f"{name} says {state}", opens_at=opens_at)


def move(
    state: str, to: str = "api-st", *gates: GateOut, opens_in: float | None = None
) -> PromotionOut:
    opens_at = NOW + timedelta(seconds=opens_in) if opens_in is not None else None
    return PromotionOut(
        source="api-qa", to=to, commit=A, state=state, reason=f"{state} because", opens_at=opens_at,
        gates=list(gates),
    )  # fmt: skip


def pause(reason: str = "db migration", service: str | None = "api") -> PauseOut:
    return PauseOut(service=service, reason=reason, by="ana", until=None, created_at=NOW)


def service(
    *moves: PromotionOut, paused: PauseOut | None = None, problem: str | None = None
) -> ServiceOut:
    stages = [StageOut(app=app, commit=B, release=None) for app in ("api-qa", "api-st", "api-prod")]
    return ServiceOut(
        name="api",
        pipeline="api",
        paused=paused,
        stages=stages,
        promotions=list(moves),
        problem=problem,
    )


AGE_18S = gate("age", "closed", 18)
GITHUB, ALERTS = gate("github", "closed"), gate("alerts", "unknown")
EVERYTHING = pause("incident 7", None)
PROD = "api-prod"
CASES = {  # id: (the service, the global pause, its status, the table's words)
    "up-to-date": (service(), None, Kind.SYNCED, ""),
    "moving": (service(move("promoting")), None, Kind.MOVING, "a1a1a1a → api-st"),
    "timed-wait": (
        service(move("waiting", "api-st", AGE_18S, opens_in=18)),
        None,
        Kind.WAITING,
        "opens in",
    ),
    "about-to-move": (
        service(move("waiting", "api-st", gate("age", "open"))),
        None,
        Kind.WAITING,
        "a1a1a1a → api-st now",
    ),
    "blocked-names-its-gates": (
        service(move("blocked", PROD, gate("allow", "open"), GITHUB, ALERTS)),
        None,
        Kind.BLOCKED,
        "by github, alerts into api-prod",
    ),
    "blocked-no-gate": (service(move("blocked", PROD)), None, Kind.BLOCKED, "into api-prod"),
    "failed": (service(move("failed", PROD)), None, Kind.FAILED, "into api-prod"),
    "paused": (
        service(move("waiting", opens_in=5), paused=pause()),
        None,
        Kind.PAUSED,
        "db migration",
    ),
    "everything-paused": (
        service(move("waiting", opens_in=5)),
        EVERYTHING,
        Kind.PAUSED,
        "everything: incident 7",
    ),
    "failed-beats-paused": (
        service(move("failed"), paused=pause()),
        None,
        Kind.FAILED,
        "into api-st",
    ),
    "blocked-beats-moving": (
        service(move("blocked", PROD), move("promoting")),
        None,
        Kind.BLOCKED,
        "into api-prod",
    ),
    "moving-beats-waiting": (
        service(move("waiting", opens_in=9), move("promoting", PROD)),
        None,
        Kind.MOVING,
        "a1a1a1a → api-prod",
    ),
    "unreadable-pipeline": (service(problem="401"), None, Kind.FAILED, "cannot read the pipeline"),
}


@pytest.mark.parametrize(("given", "everything", "kind", "text"), CASES.values(), ids=CASES)
def test_one_status_a_service_worst_first(
    given: ServiceOut, everything: PauseOut | None, kind: Kind, text: str
) -> None:
    found = status(given, everything)
    assert (found.kind, found.text) == (kind, text)


def test_a_timed_wait_counts_down_to_the_soonest_gate() -> None:
    soon, later = move("waiting", "api-st", opens_in=18), move("waiting", "api-prod", opens_in=60)
    found = status(service(later, soon), None)
    assert found.opens_at == NOW + timedelta(seconds=18)
    assert found.why == "waiting because"


def test_counts_list_every_status_worst_first_and_what_needs_a_person() -> None:
    found = counts([status(service(), None), status(service(move("failed")), None)])
    assert list(found) == list(Kind)
    assert found[Kind.FAILED] == 1
    assert found[Kind.SYNCED] == 1
    assert sum(found.values()) == 2
    assert {Kind.BLOCKED, Kind.FAILED, Kind.PAUSED} == NEEDS_ME


def distance(a: int, b: int) -> int:
    return min(abs(a - b), 360 - abs(a - b))


def test_commit_colours_stay_apart() -> None:
    assert distance(hue(A), hue(B)) >= 60  # the browser test's two commits
    # commits sharing their first six digits got the same colour when only those were read
    assert hue("abcdef" + "0" * 34) != hue("abcdef" + "1" * 34)
    assert hue(A) == hue(A)  # the same commit, the same colour, on every stage
    shas = [hashlib.sha1(str(n).encode()).hexdigest() for n in range(3600)]
    buckets = [0] * 12
    for sha in shas:
        buckets[hue(sha) // 30] += 1
    assert min(buckets) > 240  # spread over the whole wheel: 300 in each twelfth
    assert max(buckets) < 360


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        ([["api-qa", "api-prod"], ["web-qa", "web-prod"]], ["qa", "prod"]),
        ([["api-qa", "api-st", PROD], ["web-dev", "web-prod"]], ["stage 1", "stage 2", "prod"]),
        ([], []),
    ],
    ids=["shared-names", "mixed", "none"],
)  # fmt: skip
def test_stage_headings(stages: list[list[str]], expected: list[str]) -> None:
    assert columns(stages) == expected
