"""The Librato fallback: what one read of Librato's status API changes in the alerts view.

Librato's status API is the authority on Librato alerts when it is read (LIBRATO_USER and
LIBRATO_TOKEN set): `merge` says which kept alerts stopped and how each firing one is kept,
naming the ones a webhook has not named. It asks Librato, never Redis;
`AlertsView.poll` writes the answer.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from app.signals.alerts.client import LibratoClient, LibratoError
from app.signals.alerts.facts import LIBRATO, Alert
from app.signals.alerts.stored import Kept, State, dump

log = logging.getLogger(__name__)
LIBRATO_KEY = f"{LIBRATO}:"  # the view's key of a Librato alert is this and its id


@dataclass(frozen=True)
class Merge:
    """The writes one read of Librato's status makes to the firing hash."""

    gone: list[str]  # keys of kept Librato alerts that no longer fire
    fields: dict[str, str]  # key -> the stored value of each firing one


async def merge(
    librato: LibratoClient, firing: dict[str, datetime | None], state: State, now: datetime
) -> Merge:
    """Fold Librato's `firing` (id -> trigger time) into what `state` keeps."""
    kept = {k.alert.id: k for k in state.kept.values() if k.alert.source == LIBRATO}
    gone = [
        LIBRATO_KEY + alert_id
        for alert_id, k in kept.items()
        if alert_id not in firing and (k.polled or await _webhook_outdated(librato, k, now))
    ]
    fields = {}
    for alert_id, since in firing.items():
        old = kept.get(alert_id)
        alert = old.alert if old else Alert(LIBRATO, "", alert_id, since=since)
        if not alert.name:
            alert = await _named(librato, alert)
        recorded = datetime.fromtimestamp(old.recorded, UTC) if old else now
        fields[alert.key] = dump(replace(alert, since=alert.since or since), now, recorded)
    return Merge(gone, fields)


def changes(before: Iterable[Alert], after: Iterable[Alert]) -> list[Alert]:
    """Librato alerts that started or stopped firing, or got their name, between two reads."""
    old = {(a.key, a.name): a for a in before if a.source == LIBRATO}
    new = {(a.key, a.name): a for a in after if a.source == LIBRATO}
    return [old[k] for k in old.keys() - new.keys()] + [new[k] for k in new.keys() - old.keys()]


async def _named(librato: LibratoClient, alert: Alert) -> Alert:
    try:
        found = await librato.alert(alert.id)
    except LibratoError as error:
        log.warning("Librato alert #%s fires; its name is not known: %s", alert.id, error)
        return alert
    return replace(alert, name=found.name, url=found.runbook_url or alert.url)


async def _webhook_outdated(librato: LibratoClient, kept: Kept, now: datetime) -> bool:
    """A webhook said it fires, the status feed does not list it: ask the alert itself.

    News newer than this read is kept as it is; so is an alert whose status is unread.
    """
    if kept.recorded >= now.timestamp():
        return False
    try:
        return not await librato.triggered(kept.alert.id)
    except LibratoError as error:
        log.warning("Librato alert #%s kept firing, status unread: %s", kept.alert.id, error)
        return False
