"""The github gate (`app.gates.github`) and the checks fold (`fold`): pure tables."""

from datetime import timedelta

import pytest

from app.core.models import GateResult, GateState, Signals, Snapshot
from app.gates import github
from app.signals.github.facts import Checks, ChecksState, GitHubFacts, Relation, fold
from tests.factories import NOW, service, snapshot, stage

SOURCE, TARGET = "a" * 40, "b" * 40
LATER = NOW + timedelta(seconds=10)
GREEN = Checks(ChecksState.SUCCESS)


def snap(
    facts: GitHubFacts | None,
    *,
    repo: str | None = "acme/api",
    require_checks: bool = False,
    target: str | None = TARGET,
) -> Snapshot:
    signals = Signals(github={(SOURCE, TARGET): facts} if facts else {})
    return snapshot(
        (stage("api-qa", SOURCE), stage("api-st", target)),
        service=service(repo=repo, require_checks=require_checks),
        signals=signals,
    )


def judge(snapshot: Snapshot) -> GateResult | None:
    return github.check(snapshot, snapshot.pairs()[0])


@pytest.mark.parametrize(
    ("facts", "require_checks", "state", "reason"),
    [
        pytest.param(
            GitHubFacts(True, Relation.AHEAD),
            False,
            GateState.OPEN,
            "aaaaaaa is on main and ahead of bbbbbbb",
            id="on-branch-and-ahead",
        ),
        pytest.param(
            GitHubFacts(True, Relation.IDENTICAL),
            False,
            GateState.OPEN,
            "aaaaaaa is on main",
            id="identical",
        ),
        pytest.param(
            GitHubFacts(False, None),
            False,
            GateState.CLOSED,
            "aaaaaaa is not on main: only commits on main are promoted",
            id="not-on-branch",
        ),
        pytest.param(
            GitHubFacts(False, Relation.AHEAD, GREEN),
            True,
            GateState.CLOSED,
            "aaaaaaa is not on main: only commits on main are promoted",
            id="not-on-branch-whatever-else",
        ),
        pytest.param(
            GitHubFacts(True, Relation.BEHIND),
            False,
            GateState.CLOSED,
            "aaaaaaa is behind bbbbbbb in acme/api: promoting it would move api-st backwards",
            id="behind",
        ),
        pytest.param(
            GitHubFacts(True, Relation.DIVERGED),
            False,
            GateState.CLOSED,
            "aaaaaaa and bbbbbbb diverged in acme/api: api-st runs a commit that is not in"
            " aaaaaaa's history (a hotfix?)",
            id="diverged-hotfix",
        ),
        pytest.param(
            GitHubFacts(None, None, problem="GitHub unreachable: ConnectError: refused"),
            False,
            GateState.UNKNOWN,
            "whether aaaaaaa is on main is not known: GitHub unreachable: ConnectError: refused",
            id="on-branch-unknown",
        ),
        pytest.param(
            GitHubFacts(True, None, problem="GitHub answered 502 for acme/api: bad gateway"),
            False,
            GateState.UNKNOWN,
            "how aaaaaaa stands to bbbbbbb is not known: GitHub answered 502 for acme/api:"
            " bad gateway",
            id="relation-unknown",
        ),
        pytest.param(
            GitHubFacts(True, Relation.AHEAD, GREEN),
            True,
            GateState.OPEN,
            "aaaaaaa is on main and ahead of bbbbbbb, checks green",
            id="checks-green",
        ),
        pytest.param(
            GitHubFacts(True, Relation.AHEAD, Checks(ChecksState.PENDING, pending=("ci/build",))),
            True,
            GateState.CLOSED,
            "checks pending on aaaaaaa: ci/build",
            id="checks-pending",
        ),
        pytest.param(
            GitHubFacts(
                True, Relation.AHEAD, Checks(ChecksState.FAILURE, failing=("ci/lint", "travis"))
            ),
            True,
            GateState.CLOSED,
            "checks failing on aaaaaaa: ci/lint, travis",
            id="checks-failing",
        ),
        pytest.param(
            GitHubFacts(True, Relation.AHEAD, Checks(ChecksState.NONE)),
            True,
            GateState.CLOSED,
            "no checks reported on aaaaaaa yet",
            id="no-checks-reported",
        ),
        pytest.param(
            GitHubFacts(True, Relation.AHEAD, None, problem="not read from GitHub yet"),
            True,
            GateState.UNKNOWN,
            "the checks of aaaaaaa are not known: not read from GitHub yet",
            id="checks-unknown",
        ),
        pytest.param(
            GitHubFacts(True, Relation.AHEAD, None),
            False,
            GateState.OPEN,
            "aaaaaaa is on main and ahead of bbbbbbb",
            id="checks-not-required",
        ),
    ],
)
def test_the_gate(facts: GitHubFacts, require_checks: bool, state: GateState, reason: str) -> None:
    result = judge(snap(facts, require_checks=require_checks))
    assert result is not None
    assert (result.name, result.state, result.reason) == ("github", state, reason)
    assert result.opens_at is None  # nothing about GitHub opens by itself at a known time


def test_a_service_without_a_repo_has_no_github_gate() -> None:
    assert judge(snap(GitHubFacts(False), repo=None)) is None


@pytest.mark.parametrize(
    ("facts", "state"),
    [
        pytest.param(
            GitHubFacts(None, problem="GitHub unreachable", recheck_at=LATER),
            GateState.UNKNOWN,
            id="unknown",
        ),
        pytest.param(
            GitHubFacts(True, Relation.AHEAD, Checks(ChecksState.PENDING), recheck_at=LATER),
            GateState.CLOSED,
            id="pending-checks-read-by-the-api",
        ),
    ],
)
def test_recheck_at_is_passed_on(facts: GitHubFacts, state: GateState) -> None:
    result = judge(snap(facts, require_checks=True))
    assert result is not None
    assert (result.state, result.recheck_at) == (state, LATER)


def test_facts_not_gathered_are_unknown() -> None:
    result = judge(snap(None))
    assert result is not None
    assert result.state is GateState.UNKNOWN
    assert "aaaaaaa" in result.reason


def test_an_unknown_target_commit_is_unknown() -> None:
    result = judge(snap(GitHubFacts(True, Relation.AHEAD), target=None))
    assert result is not None
    assert (result.state, result.reason) == (
        GateState.UNKNOWN,
        "the commit api-st runs is not known",
    )


# the checks fold -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "suites", "expected"),
    [
        pytest.param({}, [], Checks(ChecksState.NONE), id="nothing"),
        pytest.param(
            {"cascade/api-st": "pending"}, [], Checks(ChecksState.NONE), id="only-cascade-own"
        ),
        pytest.param({"ci": "success"}, [], Checks(ChecksState.SUCCESS), id="one-green-status"),
        pytest.param(
            {"ci": "success", "cascade/api-st": "failure"},
            [],
            Checks(ChecksState.SUCCESS),
            id="cascade-own-failure-ignored",
        ),
        pytest.param(
            {"ci": "pending"}, [], Checks(ChecksState.PENDING, pending=("ci",)), id="pending"
        ),
        pytest.param(
            {"ci": "error", "lint": "failure", "docs": "pending"},
            [],
            Checks(ChecksState.FAILURE, failing=("ci", "lint"), pending=("docs",)),
            id="error-and-failure-fail",
        ),
        pytest.param(
            {},
            [("github-actions", "success"), ("codecov", "neutral"), ("x", "skipped")],
            Checks(ChecksState.SUCCESS),
            id="green-suite-conclusions",
        ),
        pytest.param(
            {},
            [("github-actions", None)],
            Checks(ChecksState.PENDING, pending=("github-actions",)),
            id="suite-not-completed",
        ),
        *[
            pytest.param(
                {"ci": "success"},
                [("github-actions", conclusion)],
                Checks(ChecksState.FAILURE, failing=("github-actions",)),
                id=f"suite-{conclusion}",
            )
            for conclusion in ("failure", "timed_out", "cancelled", "action_required", "stale")
        ],
        pytest.param(
            {},
            [("github-actions", "success"), ("github-actions", "failure")],
            Checks(ChecksState.FAILURE, failing=("github-actions",)),
            id="one-of-two-suites-of-an-app-failed",
        ),
    ],
)
def test_fold(
    statuses: dict[str, str], suites: list[tuple[str, str | None]], expected: Checks
) -> None:
    assert fold(statuses, suites) == expected
