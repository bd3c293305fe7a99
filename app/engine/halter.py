"""The auto-halt applied: the I/O around `app.core.halt`'s decision.

A reconcile asks `Halter.check` with its snapshot before it plans: the promotions into its
stages that succeeded lately are read from their records, the firing alerts and open
incidents from the signals' views, and each halt `app.core.halt.halts` decides is applied once
across processes (`Store.halt`): the commit suspect, the service paused by "cascade", a
`service.halted` event (Slack and GitHub deployments hear it), and the rollback if asked.
"""

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from app.core.halt import Halt, Promoted, Signal, alert_signals, halts, incident_signals
from app.core.models import Pause, PromotionRecord, PromotionState, Snapshot
from app.signals.views import Views
from app.storage.audit import Audit, Event
from app.storage.ledger import Ledger
from app.storage.store import Store

log = logging.getLogger(__name__)
BY = "cascade"  # the pause's `by`: the operator's pauses name a person
# A signal learnt this long after its window ended still halts (a polled feed is read about
# once a minute); past it, a stage's promotion is no longer read at each reconcile.
LATE = timedelta(minutes=5)
RollBack = Callable[[Halt, Snapshot], Awaitable[None]]


class Halter:
    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        views: Views,
        audit: Audit,
        rollback: RollBack | None = None,
    ) -> None:
        self.store, self.ledger, self.views, self.audit = store, ledger, views, audit
        self.rollback = rollback  # called for a halt of a service with `rollback = true`

    async def check(self, snapshot: Snapshot) -> list[Halt]:
        """Apply the halts the snapshot's signals call for; those this caller applied."""
        service = snapshot.service
        if not service.halt_window:
            return []
        recent = await self._recent(snapshot)
        if not recent:
            return []
        applied = []
        for halt in halts(service, recent, await self._signals(snapshot)):
            if await self._apply(halt, snapshot.now):
                applied.append(halt)
                if service.rollback and self.rollback is not None:
                    await self.rollback(halt, snapshot)
        return applied

    async def _recent(self, snapshot: Snapshot) -> list[Promoted]:
        """The succeeded promotions whose stage still runs their commit, inside the window."""
        name, window = snapshot.service.name, snapshot.service.halt_window
        since = snapshot.now - window - LATE  # a promotion makes a release: none, no read
        running = [
            (s.app, s.commit)
            for s in snapshot.stages[1:]
            if s.commit
            and s.release
            and s.release.created_at >= since
            and s.release.rollback_of is None  # a rollback (the halt's own) is no promotion
        ]
        records = await self.ledger.find(name, running) if running else {}
        return [
            _promoted(record)
            for record in records.values()
            if record.state is PromotionState.SUCCEEDED
            and snapshot.now <= record.updated_at + window + LATE
        ]

    async def _signals(self, snapshot: Snapshot) -> list[Signal]:
        """The alerts and incidents, from the snapshot when it gathered them, else Redis."""
        service, now = snapshot.service, snapshot.now
        alerts = snapshot.signals.alerts
        if alerts is None and service.every_alert:
            alerts = await self.views.alerts.gather(service, now, fetch=False)
        incidents = snapshot.signals.incidents
        if incidents is None:
            incidents = await self.views.incidents.gather(service, now, fetch=False)
        found = alert_signals(service, alerts.firing) if alerts else []
        return found + (incident_signals(service, incidents.incidents) if incidents else [])

    async def _apply(self, halt: Halt, now: datetime) -> bool:
        """The pause and the suspect mark, once; then the event. False: already halted."""
        promotion, reason = halt.promotion, halt.reason
        pause = Pause(reason=reason, created_at=now, by=BY, service=halt.service)
        if not await self.store.halt(promotion.target, promotion.commit, pause):
            return False
        log.warning("service=%s halted: %s", halt.service, reason)
        await self.audit.record(halted(halt, now))
        return True


def halted(halt: Halt, now: datetime) -> Event:
    """The `service.halted` event: the DORA metrics' change failures count these."""
    promotion = halt.promotion
    return Event(
        kind="service.halted",
        message=halt.reason,
        at=now,
        service=halt.service,
        commit=promotion.commit,
        source=None,
        target=promotion.target,
        details={"signal": halt.signal.name, "promoted_at": promotion.promoted_at.isoformat()},
    )


def _promoted(record: PromotionRecord) -> Promoted:
    return Promoted(
        record.target, record.commit, record.claimed_at, record.updated_at, over=record.over
    )
