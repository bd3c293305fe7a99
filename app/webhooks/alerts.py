"""What both alert senders (Librato, Alertmanager) do once a delivery is read into alerts.

Record them in the view, note a change in `/events`, reconcile the services whose entries
match, and answer 503 when the view is full (the sender retries; nothing is dropped).
"""

from collections.abc import Sequence
from datetime import datetime

from fastapi import HTTPException, status

from app.signals.alerts.facts import Alert, matching
from app.signals.alerts.view import Recorded
from app.storage.audit import Event
from app.webhooks.intake import Intake


async def take(
    intake: Intake, sender: str, firing: Sequence[Alert], gone: Sequence[Alert], now: datetime
) -> tuple[list[str], Recorded]:
    """Record `firing` and `gone` alerts; the services reconciled, and what changed."""
    concerned = [
        s.name for s in intake.catalog.services if matching(s.every_alert, [*firing, *gone])
    ]
    recorded = await intake.views.alerts.record(firing, gone, now)
    if recorded.changed or recorded.refused or recorded.outdated:
        event = Event("signal.alerts", recorded.summary(), now, details={"source": sender})
        await intake.audit.record(event, tuple(concerned))
    services = intake.reconcile(concerned)
    if recorded.refused:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, recorded.summary())
    return services, recorded


def outdated(recorded: Recorded) -> str:
    """The part of a webhook's answer about reports older than what is known."""
    count = len(recorded.outdated)
    return f", {count} out of order (an earlier episode): ignored" if count else ""
