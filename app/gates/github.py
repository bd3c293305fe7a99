"""github: the commit is on the service's branch and ahead of the target's commit.

So a stage never moves backwards, nor over a hotfix made directly on it (behind or
diverged is closed and says which). With `require_checks`, the commit's statuses and
check suites must be green too. Applies to services that name a `repo`.
"""

from app.config.durations import short
from app.core.models import GateResult, GateState, Pair, Snapshot
from app.signals.github.facts import ChecksState, GitHubFacts, Relation

NAME = "github"


def check(snapshot: Snapshot, pair: Pair) -> GateResult | None:
    service = snapshot.service
    if not service.repo:
        return None
    source, target = pair.source.commit, pair.target.commit
    if source is None or target is None:
        app = pair.source.app if source is None else pair.target.app
        return _unknown(f"the commit {app} runs is not known", None)
    facts = snapshot.signals.github.get((source, target))
    if facts is None:
        return _unknown(f"what GitHub says about {short(source)} has not been read yet", None)
    sha, branch, repo = short(source), service.branch, service.repo
    if facts.on_branch is None:
        return _unknown(_why(facts, f"whether {sha} is on {branch} is not known"), facts)
    if not facts.on_branch:
        reason = f"{sha} is not on {branch}: only commits on {branch} are promoted"
        return GateResult(NAME, GateState.CLOSED, reason, recheck_at=facts.recheck_at)
    if facts.relation is None:
        return _unknown(_why(facts, f"how {sha} stands to {short(target)} is not known"), facts)
    if facts.relation is Relation.BEHIND:
        reason = (
            f"{sha} is behind {short(target)} in {repo}: promoting it would move"
            f" {pair.target.app} backwards"
        )
        return GateResult(NAME, GateState.CLOSED, reason, recheck_at=facts.recheck_at)
    if facts.relation is Relation.DIVERGED:
        reason = (
            f"{sha} and {short(target)} diverged in {repo}: {pair.target.app} runs a commit"
            f" that is not in {sha}'s history (a hotfix?)"
        )
        return GateResult(NAME, GateState.CLOSED, reason, recheck_at=facts.recheck_at)
    ahead = (
        f"{sha} is on {branch}"
        if facts.relation is Relation.IDENTICAL
        else f"{sha} is on {branch} and ahead of {short(target)}"
    )
    if not service.require_checks:
        return GateResult(NAME, GateState.OPEN, ahead)
    return _checks(facts, sha, ahead)


def _checks(facts: GitHubFacts, sha: str, ahead: str) -> GateResult:
    checks = facts.checks
    if checks is None:
        return _unknown(_why(facts, f"the checks of {sha} are not known"), facts)
    if checks.state is ChecksState.SUCCESS:
        return GateResult(NAME, GateState.OPEN, f"{ahead}, checks green")
    if checks.state is ChecksState.FAILURE:
        reason = f"checks failing on {sha}: {', '.join(checks.failing)}"
    elif checks.state is ChecksState.PENDING:
        reason = f"checks pending on {sha}: {', '.join(checks.pending)}"
    else:
        reason = f"no checks reported on {sha} yet"
    return GateResult(NAME, GateState.CLOSED, reason, recheck_at=facts.recheck_at)


def _why(facts: GitHubFacts, what: str) -> str:
    return f"{what}: {facts.problem}" if facts.problem else what


def _unknown(reason: str, facts: GitHubFacts | None) -> GateResult:
    recheck_at = facts.recheck_at if facts else None
    return GateResult(NAME, GateState.UNKNOWN, reason, recheck_at=recheck_at)
