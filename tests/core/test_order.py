"""Newer and older from immutable facts (`app.core.order`): Git ancestry, else Heroku's release
order."""

import json
from dataclasses import replace
from pathlib import Path

import pytest

from app.core.models import Release, ReleaseStatus
from app.core.order import held, position, positions, rolled_back_to
from app.signals.github.facts import Relation
from app.webhooks.heroku import parse, to_release
from tests.factories import release

SAMPLES = Path(__file__).parents[1] / "fixtures" / "heroku"


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("Rollback to v10", 10),
        ("  Rollback to v3\n", 3),
        ("Deploy 1a5f89db", None),
        ("Promote api-qa v7 1a5f89db", None),
        ("Update DATABASE by heroku-postgresql", None),
        ("Rollback to v", None),
        ("Rollback to v10 (then more)", None),
        ("", None),
        (None, None),
    ],
)
def test_rolled_back_to(description: str | None, expected: int | None) -> None:
    assert rolled_back_to(description) == expected


def rollback(version: int, to: int, commit: str) -> Release:
    return replace(release("api-qa", version, commit), rollback_of=to)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (release("api-qa", 7, "A"), 7),
        (rollback(60, 3, "A"), 3),  # the version it brought back, however old
        (rollback(5, 9, "A"), 5),  # a description naming a later version is not believed
    ],
    ids=["deploy", "rollback", "rollback-forwards"],
)
def test_position(given: Release, expected: int) -> None:
    assert position(given) == expected


@pytest.mark.parametrize(
    ("releases", "expected"),
    [
        ([release("api-qa", 3, "B"), release("api-qa", 2, "A")], {"A": 2, "B": 3}),
        # A config-var release carries the commit on: its first release places it.
        (
            [release("api-qa", 4, "A"), release("api-qa", 3, "B"), release("api-qa", 2, "A")],
            {"A": 2, "B": 3},
        ),
        ([rollback(60, 3, "A"), release("api-qa", 59, "B")], {"A": 3, "B": 59}),
        ([release("api-qa", 5, "P", ReleaseStatus.PENDING), release("api-qa", 4, None)], {}),
        ([release("api-qa", 6, "F", ReleaseStatus.FAILED)], {}),
    ],
    ids=["newest-first", "config-var-release", "rollback", "pending-or-no-commit", "failed"],
)
def test_positions(releases: list[Release], expected: dict[str, int]) -> None:
    assert positions(releases) == expected
    assert positions(reversed(releases)) == expected  # whatever order they are seen in


KNOWN = {"O": 1, "A": 2, "B": 3}


@pytest.mark.parametrize(
    ("commit", "target_commit", "relation", "known", "blocked_by"),
    [
        ("B", "A", None, KNOWN, None),
        ("A", "B", None, KNOWN, "backwards (v2 and v3 of api-qa)"),
        ("B", "A", Relation.DIVERGED, KNOWN, None),  # the github gate judges diverged
        ("A", "B", Relation.AHEAD, KNOWN, None),  # Git ancestry first
        ("B", "A", Relation.BEHIND, KNOWN, "backwards (Git ancestry)"),
        ("B", "H", Relation.AHEAD, KNOWN, None),  # contained: no hotfix is lost
        ("B", "H", None, KNOWN, "never ran in api-qa (a hotfix or a direct deploy)"),
        ("B", "H", Relation.BEHIND, KNOWN, "never ran in api-qa (a hotfix or a direct deploy)"),
        ("C", "A", None, KNOWN, "the order of C and A in api-qa's releases is not known"),
        ("B", "A", None, {}, "which commits ran in api-qa is not known yet"),
        ("B", "A", None, None, "which commits ran in api-qa is not known yet"),
        ("B", "A", None, {"A": 3, "B": 3}, "the order of B and A in api-qa's releases"),
    ],
    ids=[
        "newer",
        "older",
        "diverged-by-release-order",
        "ahead-whatever-the-releases-say",
        "behind-whatever-the-releases-say",
        "ahead-of-a-commit-the-source-never-ran",
        "hotfix",
        "hotfix-behind",
        "source-commit-not-placed",
        "nothing-known",
        "no-history",
        "same-position",
    ],
)
def test_held(
    commit: str,
    target_commit: str,
    relation: Relation | None,
    known: dict[str, int] | None,
    blocked_by: str | None,
) -> None:
    reason = held("api-qa", "api-st", commit, target_commit, relation, known)
    if blocked_by is None:
        assert reason is None
    else:
        assert reason is not None
        assert blocked_by in reason


def test_a_rollback_webhook_says_which_release_it_brought_back() -> None:
    sample = json.loads((SAMPLES / "zulip-release_update.json").read_text())
    sample["data"]["description"] = "Rollback to v2"
    payload = parse(json.dumps(sample).encode())
    assert payload is not None
    assert to_release(payload).rollback_of == 2
    sample["data"]["description"] = None
    payload = parse(json.dumps(sample).encode())
    assert payload is not None
    assert to_release(payload).rollback_of is None


@pytest.mark.parametrize(
    ("upstream", "blocked_by"),
    [
        ([("api-dev", {"A": 5, "B": 9})], "backwards (v5 and v9 of api-dev)"),
        ([("api-dev", {"A": 9, "B": 5})], None),
        ([("api-dev", {"B": 5})], None),  # not both there: the source's order decides
        ([("api-dev", {"A": 5}), ("api-qa0", {"A": 2, "B": 1})], None),
    ],
    ids=["older-upstream", "newer-upstream", "upstream-ran-one", "the-first-that-ran-both"],
)
def test_the_first_stage_that_ran_both_commits_orders_them(
    upstream: list[tuple[str, dict[str, int]]], blocked_by: str | None
) -> None:
    # api-qa ran B (v2) and then A, promoted there by hand (v3): by api-qa alone, A is newer.
    known = {"B": 2, "A": 3}
    reason = held("api-qa", "api-st", "A", "B", None, known, upstream)
    assert (reason is None) == (blocked_by is None)
    if blocked_by is not None:
        assert reason is not None
        assert blocked_by in reason
