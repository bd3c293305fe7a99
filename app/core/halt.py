"""The auto-halt's decision, pure: which recent promotion a signal that started halts.

A promotion into a stage counts from the moment Cascade saw it succeed (`promoted_at`)
for `halt_window`; a signal counts when it started after the promotion was decided
(`claimed_at`) and no later than the end of that window. One that started before was
already there: it held the promotion back, or it did not watch that stage. `app.engine.halter`
reads the promotions and signals, and applies what this decides.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.config.durations import humanize, short
from app.config.services import Service
from app.signals.alerts.facts import Alert, matching
from app.signals.incidents.facts import Incident, touches


@dataclass(frozen=True)
class Promoted:
    """A promotion into `target` that succeeded, the stage still running its commit."""

    target: str
    commit: str
    claimed_at: datetime  # when it was decided: a signal older than this was already there
    promoted_at: datetime  # when Cascade saw it succeed: the window counts from here
    over: str | None = None  # the release the target ran before it (a rollback's target)


@dataclass(frozen=True)
class Signal:
    """An alert that fires or an incident that is open, and when it started."""

    name: str  # "alert HighErrorRate", "incident Database degraded"
    started: datetime
    stages: frozenset[str] | None = None  # None: it watches the whole service


@dataclass(frozen=True)
class Halt:
    """A promotion a signal halts."""

    service: str
    promotion: Promoted
    signal: Signal

    @property
    def reason(self) -> str:
        after = humanize(self.signal.started - self.promotion.promoted_at)
        when = f"{after} after" if self.signal.started >= self.promotion.promoted_at else "as"
        verb = "started firing" if self.signal.name.startswith("alert ") else "opened"
        return (
            f"auto-halt: {self.signal.name} {verb} {when} {short(self.promotion.commit)}"
            f" reached {self.promotion.target}"
        )


def halts(service: Service, promoted: Iterable[Promoted], signals: Sequence[Signal]) -> list[Halt]:
    """The promotions of `service` that `signals` halt, each by its earliest signal."""
    window = service.halt_window
    if not window:
        return []
    found = []
    for promotion in promoted:
        inside = [s for s in signals if _halts(promotion, s, window)]
        if inside:
            earliest = min(inside, key=lambda s: (s.started, s.name))
            found.append(Halt(service.name, promotion, earliest))
    return found


def _halts(promotion: Promoted, signal: Signal, window: timedelta) -> bool:
    if signal.stages is not None and promotion.target not in signal.stages:
        return False
    return promotion.claimed_at < signal.started <= promotion.promoted_at + window


def alert_signals(service: Service, firing: Iterable[Alert]) -> list[Signal]:
    """The firing alerts of `service` as signals: its own alerts watch every stage, a
    stage's `stage_alerts` that stage only. An alert whose start is unknown cannot be
    told from one that was already there: it halts nothing (the gate still holds it)."""
    found = []
    for alert in firing:
        if alert.since is None:
            continue
        stages = None
        if not matching(service.alerts, (alert,)):
            watched = [app for app, es in service.stage_alerts.items() if matching(es, (alert,))]
            if not watched:
                continue
            stages = frozenset(watched)
        found.append(Signal(f"alert {alert.name or alert.id}", alert.since, stages))
    return found


def incident_signals(service: Service, incidents: Iterable[Incident]) -> list[Signal]:
    """The open incidents touching `service` whose opening time is known, as signals.

    A maintenance is planned, not a failure: it halts nothing."""
    return [
        Signal(f"incident {incident.name or incident.id}", incident.created_at)
        for incident in incidents
        if incident.kind == "incident"
        and incident.open
        and incident.created_at is not None
        and touches(service.incident_systems, incident.components)
    ]
