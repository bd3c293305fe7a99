"""Values of the github gate: is the commit on the branch, ahead of the target, checked green.

Pure: the webhook turns deliveries into `Push` and `CheckReport`, `app.signals.github.view`
keeps them in Redis and reads the rest from GitHub, and `fold` judges a commit's checks.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

OWN_CONTEXT = "cascade/"  # Cascade's own `cascade/<stage>` statuses: never a check of the commit
GREEN = frozenset({"success", "neutral", "skipped"})  # check suite conclusions that pass
PENDING_STATES = frozenset({"pending", "queued", "in_progress", "requested", "waiting"})


class Relation(StrEnum):
    """GitHub's compare status of `base...head` (base: the target's commit, head: the source's)."""

    AHEAD = "ahead"
    BEHIND = "behind"
    DIVERGED = "diverged"
    IDENTICAL = "identical"

    @property
    def contains_base(self) -> bool:
        """True when `head` has `base` in its history: moving from base to head is forwards."""
        return self in (Relation.AHEAD, Relation.IDENTICAL)


class ChecksState(StrEnum):
    SUCCESS = "success"
    PENDING = "pending"
    FAILURE = "failure"
    NONE = "none"  # nothing reported on the commit at all


@dataclass(frozen=True)
class Checks:
    """The commit's statuses and check suites, folded (Cascade's own `cascade/…` left out)."""

    state: ChecksState
    failing: tuple[str, ...] = ()  # contexts and check-suite apps that failed
    pending: tuple[str, ...] = ()


@dataclass(frozen=True)
class GitHubFacts:
    """What is known about moving the source's commit over the target's; None: not known."""

    on_branch: bool | None = None
    relation: Relation | None = None
    checks: Checks | None = None  # only gathered with require_checks
    problem: str | None = None  # why something above is not known (GitHub unreachable, …)
    recheck_at: datetime | None = None  # when a fresh read may know more


@dataclass(frozen=True)
class Push:
    """A push to a branch: what is on it now, and whether its history was rewritten."""

    repo: str
    branch: str
    before: str | None  # the branch's head before; None when the push created the branch
    after: str | None  # the branch's new head; None when the push deleted the branch
    commits: tuple[str, ...]  # the commits it pushed (GitHub lists up to 20)
    forced: bool

    @property
    def on_branch(self) -> frozenset[str]:
        """Every commit the push shows on the branch now."""
        if self.after is None:
            return frozenset()
        kept = (self.before,) if self.before and not self.forced else ()
        return frozenset((*self.commits, self.after, *kept))

    @property
    def rewrites(self) -> bool:
        """A forced push or a deletion: what was known about the repository's history is void."""
        return self.forced or self.after is None


@dataclass(frozen=True)
class CheckReport:
    """One status context or one check suite on a commit, as a webhook reported it."""

    repo: str
    sha: str
    key: str  # "status:<context>" or "suite:<id>": a later report of the same key replaces it
    name: str  # the context, or the check suite's app
    state: str  # the status state, or the suite's conclusion (its status while not completed)
    at: datetime  # when GitHub last changed it: an older report never replaces a newer one


def fold(statuses: Mapping[str, str], suites: Iterable[tuple[str, str | None]]) -> Checks:
    """Judge a commit by its status contexts (context → state) and check suites (app, conclusion).

    Failing wins over pending, pending over green; a suite without a conclusion is pending.
    Cascade's own `cascade/…` statuses are left out: they say where the commit is, not
    whether it is good.
    """
    failing: list[str] = []
    pending: list[str] = []
    seen = False
    for context, state in statuses.items():
        if context.startswith(OWN_CONTEXT):
            continue
        seen = True
        if state in PENDING_STATES:
            pending.append(context)
        elif state != "success":  # failure, error
            failing.append(context)
    for app, conclusion in suites:
        seen = True
        if conclusion is None or conclusion in PENDING_STATES:
            pending.append(app)
        elif conclusion not in GREEN:  # failure, timed_out, cancelled, action_required, stale
            failing.append(app)
    if failing:
        state = ChecksState.FAILURE
    elif pending:
        state = ChecksState.PENDING
    else:
        state = ChecksState.SUCCESS if seen else ChecksState.NONE
    return Checks(state, _unique(failing), _unique(pending))


def _unique(names: list[str]) -> tuple[str, ...]:
    return tuple(sorted(set(names)))
