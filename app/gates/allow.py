"""allow: no global pause, no pause of this service and no freeze window is in force.

A timed pause or a freeze window knows when it opens; its end wakes the reconcile.
"""

from datetime import datetime

from app.core.models import GateResult, GateState, Pair, Pause, Snapshot, pause_scope
from app.signals.freezes.facts import FreezeWindow

NAME = "allow"


def check(snapshot: Snapshot, pair: Pair) -> GateResult:
    now = snapshot.now
    pauses = [p for p in (snapshot.global_pause, snapshot.service_pause) if p and p.active(now)]
    freezes = [f for f in snapshot.signals.freezes if f.started_at <= now < f.ends_at]
    if not pauses and not freezes:
        return GateResult(NAME, GateState.OPEN, "not paused, no freeze window")
    reasons = [_pause(p) for p in pauses] + [_freeze(f, snapshot.service.name) for f in freezes]
    ends: list[datetime | None] = [p.until for p in pauses] + [f.ends_at for f in freezes]
    opens_at = None if None in ends else max(e for e in ends if e is not None)
    return GateResult(NAME, GateState.CLOSED, "; ".join(reasons), opens_at)


def _pause(pause: Pause) -> str:
    scope = pause_scope(pause.service)
    by = f" by {pause.by}" if pause.by else ""
    until = f" until {pause.until.isoformat(timespec='seconds')}" if pause.until else ""
    return f"{scope} paused{by}{until}: {pause.reason}"


def _freeze(window: FreezeWindow, service: str) -> str:
    scope = pause_scope(None if window.global_ else service)
    until = window.ends_at.isoformat(timespec="seconds")
    return f"{scope} frozen until {until}: {window.reason}"
