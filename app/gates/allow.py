"""allow: no global pause and no pause of this service is in force."""

from app.models import GateResult, GateState, Pair, Pause, Snapshot, pause_scope

NAME = "allow"


def check(snapshot: Snapshot, pair: Pair) -> GateResult:
    now = snapshot.now
    pauses = [p for p in (snapshot.global_pause, snapshot.service_pause) if p and p.active(now)]
    if not pauses:
        return GateResult(NAME, GateState.OPEN, "not paused")
    reason = "; ".join(_describe(p) for p in pauses)
    if any(p.until is None for p in pauses):
        return GateResult(NAME, GateState.CLOSED, reason)
    return GateResult(NAME, GateState.CLOSED, reason, max(p.until for p in pauses if p.until))


def _describe(pause: Pause) -> str:
    scope = pause_scope(pause.service)
    by = f" by {pause.by}" if pause.by else ""
    until = f" until {pause.until.isoformat(timespec='seconds')}" if pause.until else ""
    return f"{scope} paused{by}{until}: {pause.reason}"
