"""The reconcile plan: pure, from one snapshot to what may move now and when to look again.

Every adjacent pair whose commits differ is a candidate. A candidate is ready
only when Heroku's state makes the move safe (nothing in progress, never
backwards, never over a hotfix) and every gate is open; unknown is closed.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

from app.durations import short
from app.gates import GATES, Gate
from app.models import (
    Candidate,
    GateResult,
    GateState,
    Pair,
    PairState,
    Plan,
    PromotionState,
    Snapshot,
)
from app.signals.github import Relation

FOLLOW_EVERY = timedelta(seconds=2)  # look again this soon while a promotion is in flight


def plan(snapshot: Snapshot, gates: Sequence[Gate] = GATES) -> Plan:
    candidates = tuple(
        c for pair in snapshot.pairs() if (c := candidate(snapshot, pair, gates)) is not None
    )
    return Plan(snapshot.service.name, candidates, _wake_at(snapshot.now, candidates))


def candidate(snapshot: Snapshot, pair: Pair, gates: Sequence[Gate] = GATES) -> Candidate | None:
    """What may happen between `pair.source` and `pair.target`; None when they agree."""
    source, target, commit = pair.source, pair.target, pair.source.commit
    if commit is None:
        reason = f"no succeeded release known on {source.app}"
        return Candidate(pair, None, PairState.BLOCKED, (), reason)
    if target.commit == commit:
        return None
    results = tuple(r for gate in gates if (r := gate(snapshot, pair)) is not None)

    record = snapshot.promotions.get((target.app, commit))
    if record is not None and record.state is PromotionState.FAILED:
        reason = f"promotion of {short(commit)} to {target.app} failed: {record.error}"
        return Candidate(pair, commit, PairState.FAILED, results, reason)
    if record is not None and record.state is PromotionState.SUCCEEDED:
        reason = (
            f"{short(commit)} was promoted to {target.app} once already, which now runs"
            f" {short(target.commit)} (rolled back?): a commit is promoted to a stage only once"
        )
        return Candidate(pair, commit, PairState.BLOCKED, results, reason)
    if record is not None:
        reason = f"promoting {short(commit)} to {target.app} ({record.state})"
        if record.error:  # an answer that never came: settled from what the target runs
            reason += f", last error: {record.error}"
        return Candidate(pair, commit, PairState.PROMOTING, results, reason)

    held = _held(snapshot, pair, commit)
    if held is not None:
        return Candidate(pair, commit, held[0], results, held[1])
    return _judge(pair, commit, results)


def _held(snapshot: Snapshot, pair: Pair, commit: str) -> tuple[PairState, str] | None:
    """Reasons rooted in Heroku's state, whatever the gates say.

    Forwards means the target's commit ran in the source before the source's commit did
    (the source's release history), or GitHub says the source's commit contains it.
    """
    source, target = pair.source, pair.target
    for stage in (source, target):
        if stage.pending is not None:
            return PairState.WAITING, f"v{stage.pending.version} is being released on {stage.app}"
    if target.commit is None:
        return PairState.BLOCKED, f"no succeeded release known on {target.app}"
    if _github_says_ahead(snapshot, commit, target.commit):
        return None
    if not snapshot.history.get(source.app):
        return PairState.BLOCKED, f"which commits ran in {source.app} is not known yet"
    target_at = snapshot.arrived(source.app, target.commit)
    if target_at is None:
        return PairState.BLOCKED, (
            f"{target.app} runs {short(target.commit)}, which never ran in {source.app}"
            " (a hotfix or a direct deploy): left alone"
        )
    source_at = snapshot.arrived(source.app, commit)
    if source_at is not None and target_at > source_at:
        return PairState.BLOCKED, (
            f"{short(commit)} is older in {source.app} than {short(target.commit)},"
            f" which {target.app} runs: promoting it would go backwards"
        )
    return None


def _github_says_ahead(snapshot: Snapshot, commit: str, target_commit: str) -> bool:
    facts = snapshot.signals.github.get((commit, target_commit))
    return facts is not None and facts.relation is Relation.AHEAD


def _judge(pair: Pair, commit: str, results: tuple[GateResult, ...]) -> Candidate:
    closed = [r for r in results if r.state is not GateState.OPEN]
    if not closed:
        return Candidate(pair, commit, PairState.READY, results, "every gate is open")
    reason = "; ".join(f"{r.name}: {r.reason}" for r in closed)
    if all(r.state is GateState.CLOSED and r.opens_at is not None for r in closed):
        opens_at = max(r.opens_at for r in closed if r.opens_at is not None)
        return Candidate(pair, commit, PairState.WAITING, results, reason, opens_at)
    return Candidate(pair, commit, PairState.BLOCKED, results, reason)


def _wake_at(now: datetime, candidates: Sequence[Candidate]) -> datetime | None:
    """The earliest moment something may change without outside news."""
    times = [c.opens_at for c in candidates if c.opens_at is not None]
    times += [r.opens_at for c in candidates for r in c.gates if r.opens_at is not None]
    times += [r.recheck_at for c in candidates for r in c.gates if r.recheck_at is not None]
    if any(c.state is PairState.PROMOTING for c in candidates):
        times.append(now + FOLLOW_EVERY)
    future = [t for t in times if t > now]
    return min(future, default=None)
