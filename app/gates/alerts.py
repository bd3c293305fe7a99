"""alerts: none of the alerts the service lists, or its source stage's `stage_alerts`, fires.

Closed names each firing alert and since when. It has no `opens_at`: it opens on the
webhook (or Librato poll) that clears the last one, which reconciles the service at once.
Unknown (Librato's feed stale, no sender heard yet) asks to be looked at again soon.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

from app.core.models import GateResult, GateState, Pair, Snapshot
from app.signals.alerts.facts import LIBRATO, Alert, detail, matching, shown_labels, title

NAME = "alerts"


def check(snapshot: Snapshot, pair: Pair) -> GateResult | None:
    entries = snapshot.service.alerts_out_of(pair.source.app)
    if not entries:
        return None
    view = snapshot.signals.alerts
    if view is None:  # configured but not gathered: never promote on missing information
        return GateResult(NAME, GateState.UNKNOWN, "the alerts were not read")
    firing = _concerning(snapshot, pair.source.app, view.firing)
    if firing:
        groups: dict[tuple[str, str], list[Alert]] = {}
        for alert in firing:  # Alertmanager: one line per alertname, however many fire
            group = alert.id if alert.source == LIBRATO else alert.name
            groups.setdefault((alert.source, group), []).append(alert)
        reason = "; ".join(_firing(alerts, snapshot.now) for alerts in groups.values())
        if view.problem:
            reason += f"; also, {view.problem}"
        return GateResult(NAME, GateState.CLOSED, reason, recheck_at=view.recheck_at)
    if view.problem:
        return GateResult(NAME, GateState.UNKNOWN, view.problem, recheck_at=view.recheck_at)
    return GateResult(
        NAME, GateState.OPEN, f"none of {', '.join(dict.fromkeys(entries))} is firing"
    )


def _concerning(snapshot: Snapshot, source: str, firing: Sequence[Alert]) -> list[Alert]:
    """The firing alerts that hold promotions out of `source`: all but those only another
    stage's `stage_alerts` name (an alert no entry names is kept: unknown is closed)."""
    service = snapshot.service
    others = [e for app, es in service.stage_alerts.items() if app != source for e in es]
    if not others:
        return list(firing)
    mine = service.alerts_out_of(source)
    return [a for a in firing if matching(mine, (a,)) or not matching(others, (a,))]


def _firing(alerts: Sequence[Alert], now: datetime) -> str:
    """`"name" firing since 12:03 UTC (source, detail)` for the alerts of one group."""
    first = alerts[0]
    starts = [a.since for a in alerts if a.since is not None]
    since = f" since {_when(min(starts), now)}" if starts else ""
    if len(alerts) == 1:
        return f"{title(first)} firing{since} ({detail(first)})"
    common = {k: v for k, v in first.labels.items() if all(a.labels.get(k) == v for a in alerts)}
    return (
        f"{title(first)} firing{since} ({first.source}, {len(alerts)} alerts{shown_labels(common)})"
    )


def _when(moment: datetime, now: datetime) -> str:
    """`12:03 UTC` on the day of `now`, `2024-05-01 12:03 UTC` on another."""
    moment = moment.astimezone(UTC)
    day = "" if moment.date() == now.astimezone(UTC).date() else f"{moment:%Y-%m-%d} "
    return f"{day}{moment:%H:%M} UTC"
