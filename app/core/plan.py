"""The reconcile plan: pure, from one snapshot to what may move now and when to look again.

Every adjacent pair whose commits differ is a candidate. A candidate is ready
only when Heroku's state makes the move safe (nothing in progress, never
backwards, never over a hotfix) and every gate is open; unknown is closed.
When the source's commit is too young, an older one that proved itself there
may move instead (`app.core.proven`), judged the same way.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta

from app.config.durations import short
from app.core import order
from app.core.models import (
    Candidate,
    GateResult,
    GateState,
    Pair,
    PairState,
    Plan,
    PromotionRecord,
    PromotionState,
    Release,
    Snapshot,
    StageView,
)
from app.core.proven import KEPT_FOR, KEPT_RELEASES, expired
from app.gates import GATES, SAME_FOR_EVERY_PAIR, Gate, age

FOLLOW_FIRST = timedelta(seconds=2)  # how soon a promotion just sent is looked at again
FOLLOW_AT_MOST = timedelta(seconds=30)  # and how long it is ever left, however long it takes


def follow_at(now: datetime, claimed_at: datetime) -> datetime:
    """When to look at a promotion in flight again: soon at first, then a tenth of its age
    (a slug copy can take many minutes: every 2 s for all of them was 900 calls an hour)."""
    return now + min(max((now - claimed_at) / 10, FOLLOW_FIRST), FOLLOW_AT_MOST)


# Bound once: Python 3.11 looks `GateState.OPEN` up through `EnumType.__getattr__`, ten
# times the cost of a global, and the plan compares states for every pair of every service.
OPEN, CLOSED = GateState.OPEN, GateState.CLOSED
READY, WAITING, BLOCKED = PairState.READY, PairState.WAITING, PairState.BLOCKED
PROMOTING = PairState.PROMOTING


def plan(snapshot: Snapshot, gates: Sequence[Gate] = GATES) -> Plan:
    pairs = snapshot.pairs()
    asked = _ask_once(snapshot, pairs, gates)
    found = []
    for pair in pairs:
        found_one = candidate(snapshot, pair, asked)
        if found_one is not None:
            found.append(found_one)
    candidates = tuple(found)
    return Plan(snapshot.service.name, candidates, _wake_at(snapshot, candidates))


def _ask_once(snapshot: Snapshot, pairs: Sequence[Pair], gates: Sequence[Gate]) -> list[Gate]:
    """`gates`, with those that never read the pair answered once for every pair.

    One that does not apply to the service (None) is left out.
    """
    asked: list[Gate] = []
    for gate in gates:
        if not pairs or gate not in SAME_FOR_EVERY_PAIR:
            asked.append(gate)
        elif (result := gate(snapshot, pairs[0])) is not None:
            asked.append(_answer(result))
    return asked


def _answer(result: GateResult) -> Gate:
    return lambda snapshot, pair: result


def candidate(snapshot: Snapshot, pair: Pair, gates: Sequence[Gate] = GATES) -> Candidate | None:
    """What may happen between `pair.source` and `pair.target`; None when they agree.

    The source's commit, or, while only its age holds it, the one that proved itself there.
    """
    found = _decide(snapshot, pair, gates)
    if found is None or not _too_young(found):
        return found
    proven = snapshot.proven.get(pair.source.app) if snapshot.proven else None
    if proven is None or proven.commit in (found.commit, pair.target.commit):
        return found
    if found.state is PROMOTING:  # only while the promotion in flight is the proven one's
        busy = snapshot.in_flight.get(pair.target.app) if snapshot.in_flight else None
        if busy is None or busy.commit != proven.commit:
            return found
    elif found.state not in (WAITING, BLOCKED):
        return found
    return _proven(snapshot, pair, gates, found, proven)


def _too_young(found: Candidate) -> bool:
    return any(r.name == age.NAME and r.state is CLOSED for r in found.gates)


def _proven(
    snapshot: Snapshot, pair: Pair, gates: Sequence[Gate], waiting: Candidate, proven: Release
) -> Candidate:
    """`proven` moving in place of the source's young commit when it may move now (or is
    moving); else the young one waiting, with why the proven one cannot move if Heroku no
    longer holds it."""
    source = pair.source
    newest = max(r.version for r in (source.release, source.pending, proven) if r is not None)
    if expired(proven, newest, snapshot.now):
        reason = (
            f"{waiting.reason}; {short(proven.commit)}, which ran long enough in {source.app},"
            f" cannot move instead: Heroku no longer holds v{proven.version} (more than"
            f" {KEPT_RELEASES} releases back and older than {KEPT_FOR.days} days)"
        )
        return Candidate(
            pair, waiting.commit, waiting.state, waiting.gates, reason, waiting.opens_at
        )
    moved = _decide(
        snapshot,
        Pair(pair.index, StageView(source.app, proven, source.pending), pair.target),
        gates,
    )
    if moved is None or moved.state not in (READY, PROMOTING):
        return waiting
    reason = (
        f"{moved.reason}; {short(proven.commit)} (v{proven.version}) proved itself in"
        f" {source.app}, whose {short(source.commit)} is too young to move yet"
    )
    return Candidate(pair, moved.commit, moved.state, moved.gates, reason, moved.opens_at, proven)


def _decide(snapshot: Snapshot, pair: Pair, gates: Sequence[Gate]) -> Candidate | None:
    """The candidate for the source's commit as it stands."""
    source, target = pair.source, pair.target
    commit, target_commit = source.commit, target.commit
    if snapshot.container_stack:
        refused = _container_stack(snapshot.container_stack, pair)
        if refused is not None:
            return Candidate(pair, commit, BLOCKED, (), refused)
    if commit is None:
        reason = f"no succeeded release known on {source.app}"
        return Candidate(pair, None, BLOCKED, (), reason)
    if target_commit == commit:
        return None
    answers = []
    for gate in gates:  # a loop, not a comprehension: cheaper, and this runs for every pair
        answer = gate(snapshot, pair)
        if answer is not None:
            answers.append(answer)
    results = tuple(answers)

    record = snapshot.promotions.get((target.app, commit)) if snapshot.promotions else None
    if record is not None:
        return _promoted(pair, commit, results, record)
    suspect = snapshot.suspects.get(commit) if snapshot.suspects else None
    if suspect is not None:  # an auto-halt named it: it moves no further until retried
        reason = f"{short(commit)} is suspect ({suspect}): POST /retry to move it on"
        return Candidate(pair, commit, BLOCKED, results, reason)
    busy = snapshot.in_flight.get(target.app) if snapshot.in_flight else None
    if busy is not None:  # promotions into a target go one at a time, in the order decided
        reason = f"waiting for the promotion of {short(busy.commit)} to {target.app} to settle"
        return Candidate(pair, commit, PROMOTING, results, reason)
    held = _held(snapshot, pair, commit, target_commit)
    if held is not None:
        return Candidate(pair, commit, held[0], results, held[1])
    return _judge(pair, commit, results)


def _container_stack(apps: frozenset[str], pair: Pair) -> str | None:
    """Why Heroku will not promote the pair, if an app of it is on the container stack."""
    for app in (pair.source.app, pair.target.app):
        if app in apps:
            return (
                f"{app} is on the container stack: Heroku's pipeline promotions do not support"
                " it (deploy each stage's image with the Container Registry instead)"
            )
    return None


def _promoted(
    pair: Pair, commit: str, results: tuple[GateResult, ...], record: PromotionRecord
) -> Candidate:
    """A pair whose promotion Cascade has already claimed: its record decides."""
    target = pair.target
    if record.state is PromotionState.FAILED:
        reason = f"promotion of {short(commit)} to {target.app} failed: {record.error}"
        return Candidate(pair, commit, PairState.FAILED, results, reason)
    if record.state is PromotionState.SUCCEEDED:
        reason = (
            f"{short(commit)} was promoted to {target.app} once already, which now runs"
            f" {short(target.commit)} (rolled back?): a commit is promoted to a stage only once"
        )
        return Candidate(pair, commit, BLOCKED, results, reason)
    reason = f"promoting {short(commit)} to {target.app} ({record.state})"
    if record.error:  # an answer that never came: settled from what the target runs
        reason += f", last error: {record.error}"
    return Candidate(pair, commit, PROMOTING, results, reason)


def _held(
    snapshot: Snapshot, pair: Pair, commit: str, target_commit: str | None
) -> tuple[PairState, str] | None:
    """Reasons rooted in Heroku's state, whatever the gates say.

    Forwards is decided from immutable facts (`app.core.order`): Git ancestry, else the source's
    release order; never from when Cascade heard of a commit.
    """
    source, target = pair.source, pair.target
    for stage in (source, target):
        if stage.pending is not None:
            return WAITING, f"v{stage.pending.version} is being released on {stage.app}"
    if snapshot.service.waves and (apart := _wave_apart(snapshot, pair)) is not None:
        return WAITING, apart
    if target_commit is None:
        return BLOCKED, f"no succeeded release known on {target.app}"
    facts = snapshot.signals.github.get((commit, target_commit))
    relation = facts.relation if facts is not None else None
    positions = snapshot.positions
    known = positions.get(source.app)
    upstream = [(s.app, positions[s.app]) for s in snapshot.before(pair) if s.app in positions]
    reason = order.held(source.app, target.app, commit, target_commit, relation, known, upstream)
    return None if reason is None else (BLOCKED, reason)


def _wave_apart(snapshot: Snapshot, pair: Pair) -> str | None:
    """Why the source's wave cannot move on yet: its apps do not all run one commit."""
    wave = snapshot.waves()[pair.index]
    runs = wave[0].commit
    behind = [stage.app for stage in wave if stage.commit != runs or stage.pending is not None]
    if not behind:
        return None
    return (
        f"{', '.join(behind)} of the wave {' + '.join(s.app for s in wave)} do not run"
        f" {short(runs)} yet: a wave moves on only once all of it runs one commit"
    )


def _judge(pair: Pair, commit: str, results: tuple[GateResult, ...]) -> Candidate:
    """Ready when every gate is open; waiting when every closed gate knows when it opens."""
    reasons: list[str] = []
    opening: list[datetime] = []
    for r in results:  # one loop, not three comprehensions: this runs for every pair
        if r.state is not OPEN:
            reasons.append(f"{r.name}: {r.reason}")
            if r.state is CLOSED and r.opens_at is not None:
                opening.append(r.opens_at)
    if not reasons:
        return Candidate(pair, commit, READY, results, "every gate is open")
    if len(opening) < len(reasons):
        return Candidate(pair, commit, BLOCKED, results, "; ".join(reasons))
    return Candidate(pair, commit, WAITING, results, "; ".join(reasons), max(opening))


def _wake_at(snapshot: Snapshot, candidates: Sequence[Candidate]) -> datetime | None:
    """The earliest moment something may change without outside news.

    A candidate's own `opens_at` is the latest of its closed gates': counted among theirs.
    """
    now = snapshot.now
    soonest = _follow_at(snapshot) if any(c.state is PROMOTING for c in candidates) else None
    for c in candidates:  # a running minimum, no lists: this runs for every pair
        for r in c.gates:
            for moment in (r.opens_at, r.recheck_at):
                if moment is not None and moment > now and (soonest is None or moment < soonest):
                    soonest = moment
        if snapshot.proves_at and c.state is WAITING and _too_young(c):
            # an older commit than the young one may prove itself sooner (`app.core.proven`)
            moment = snapshot.proves_at.get(c.pair.source.app)
            if moment is not None and moment > now and (soonest is None or moment < soonest):
                soonest = moment
    return soonest


def _follow_at(snapshot: Snapshot) -> datetime:
    """When to look again at the promotions in flight (the youngest decides)."""
    records = [*snapshot.promotions.values(), *snapshot.in_flight.values()]
    unsettled = [r.claimed_at for r in records if not r.state.settled]
    return follow_at(snapshot.now, max(unsettled, default=snapshot.now))
