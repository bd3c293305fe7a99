"""The status pages Cascade reads, each recognised by its shape and read into a `Feed`.

A reader per shape: Heroku's v4 `current-status`, a Statuspage `summary.json`, and the
Salesforce Trust API (`https://api.status.salesforce.com/v1`, where Heroku's CLI looks when
status.heroku.com does not answer): an instance's status with its incidents and
maintenances, or a list of instances, active incidents or maintenances. A maintenance in
progress counts like an open incident. A body that is none of them, or not as its shape
promises, is a `StatusFeedError` saying what it looks like. Pure: the GET is
`app.signals.incidents.client`'s.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.signals.incidents.facts import Component, Feed, Incident

MAX_INCIDENTS = 200  # a page listing more is truncated: enough to keep the gate closed
Json = dict[str, Any]
Body = Json | list[Any]
TRUST_PAGE = "https://status.salesforce.com"
TRUST_ENDED = frozenset({"completed", "canceled", "cancelled", "resolved"})  # last event types


class StatusFeedError(Exception):
    """The status page could not be read, or its answer was not understood."""


@dataclass(frozen=True)
class Reader:
    name: str
    fits: Callable[[Body], bool]  # recognises the shape from the top-level keys
    read: Callable[[Any, datetime], Feed]


def read_heroku_v4(body: Json, now: datetime) -> Feed:
    """`{status: [{system, status}], incidents: [{title, full_url, updates}], scheduled}`.

    A listed incident is open (unless its latest update says `resolved`) and names no
    system, so it touches every service; a system that is not green counts as a troubled
    component. `scheduled` is left out:
    nothing in it says whether a maintenance is in progress.
    """
    systems = tuple(Component(str(s["system"]), str(s["status"])) for s in body["status"])
    incidents = tuple(_heroku_incident(i) for i in body["incidents"][:MAX_INCIDENTS])
    return Feed(now, tuple(i for i in incidents if i.open), tuple(s for s in systems if s.troubled))


def read_statuspage(body: Json, now: datetime) -> Feed:
    """`{page, status, components, incidents, scheduled_maintenances}` (Statuspage API v2)."""
    page_id = _text(body["page"].get("id"))
    components = tuple(
        Component(str(c["name"]), str(c["status"]), _time(c.get("updated_at")), page_id)
        for c in body["components"]
    )
    listed = [(i, "incident") for i in body["incidents"]]
    listed += [(m, "maintenance") for m in body.get("scheduled_maintenances") or ()]
    incidents = tuple(_statuspage_incident(i, page_id, kind) for i, kind in listed[:MAX_INCIDENTS])
    return Feed(
        now,
        tuple(i for i in incidents if i.open),
        tuple(c for c in components if c.troubled),
        page_id,
    )


def read_trust(body: Body, now: datetime) -> Feed:
    """The Trust API: an instance (`key`, `status`, `Incidents`, `Maintenances`) or a list of
    instances, incidents (`IncidentImpacts`) or maintenances (`plannedStartTime`).

    An instance not `OK` is a troubled component named by its key; an incident is open
    while one of its impacts has not ended; a maintenance is open while in progress.
    """
    incidents: list[Incident] = []
    components: list[Component] = []
    for item in body if isinstance(body, list) else [body]:
        if _trust_instance(item):
            key = str(item["key"])
            components.append(Component(key, str(item["status"])))
            incidents += [_trust_incident(i, (key,)) for i in item.get("Incidents") or ()]
            incidents += [
                _trust_maintenance(m, now, (key,)) for m in item.get("Maintenances") or ()
            ]
        elif _trust_maintenance_shape(item):
            incidents.append(_trust_maintenance(item, now, ()))
        else:
            incidents.append(_trust_incident(item, ()))
    return Feed(
        now,
        tuple(i for i in incidents[:MAX_INCIDENTS] if i.open),
        tuple(c for c in components if c.troubled),
    )


def _trust_instance(item: object) -> bool:
    return isinstance(item, dict) and "key" in item and "status" in item


def _trust_maintenance_shape(item: object) -> bool:
    return isinstance(item, dict) and ("plannedStartTime" in item or "MaintenanceImpacts" in item)


def _trust_shape(body: Body) -> bool:
    """An instance, or a list of Trust objects (an empty list: nothing active)."""
    if isinstance(body, dict):
        return _trust_instance(body) and ("Incidents" in body or "Maintenances" in body)
    return all(
        _trust_instance(i) or _trust_maintenance_shape(i)
        or (isinstance(i, dict) and "IncidentImpacts" in i)
        for i in body
    )  # fmt: skip


READERS: tuple[Reader, ...] = (
    Reader(
        "Heroku v4 current-status",
        lambda b: (
            isinstance(b, dict)
            and isinstance(b.get("status"), list)
            and isinstance(b.get("incidents"), list)
        ),
        read_heroku_v4,
    ),
    Reader(
        "Statuspage summary.json",
        lambda b: (
            isinstance(b, dict)
            and isinstance(b.get("page"), dict)
            and isinstance(b.get("components"), list)
            and isinstance(b.get("incidents"), list)
        ),
        read_statuspage,
    ),
    Reader("Salesforce Trust API", _trust_shape, read_trust),
)


def recognise(body: object) -> Reader:
    """The reader for `body`'s shape; `StatusFeedError` when none fits."""
    if isinstance(body, dict | list):
        for reader in READERS:
            if reader.fits(body):
                return reader
    keys = ", ".join(sorted(map(str, body))[:8]) if isinstance(body, dict) else type(body).__name__
    shapes = " nor a ".join(r.name for r in READERS)
    raise StatusFeedError(f"the answer is neither a {shapes} (it has: {keys})")


def parse(body: object, now: datetime) -> Feed:
    reader = recognise(body)
    try:
        return reader.read(body, now)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise StatusFeedError(
            f"looks like a {reader.name} but could not be read: {type(error).__name__}: {error}"
        ) from None


def _heroku_incident(raw: Json) -> Incident:
    updates = sorted(raw.get("updates") or (), key=lambda u: str(u.get("updated_at") or ""))
    latest = updates[-1] if updates else {}
    title = str(raw["title"])
    ident = raw.get("id") or raw.get("full_url") or f"{title}@{raw.get('created_at')}"
    return Incident(
        id=str(ident),
        name=title,
        status=str(latest.get("update_type") or "open"),
        url=_text(raw.get("full_url")),
        updated_at=_time(latest.get("updated_at") or raw.get("created_at")),
        created_at=_time(raw.get("created_at")),
    )


def _statuspage_incident(raw: Json, page_id: str | None, kind: str = "incident") -> Incident:
    names = [str(c["name"]) for c in raw.get("components") or ()]
    return Incident(
        id=str(raw["id"]),
        name=str(raw["name"]),
        status=str(raw["status"]),
        components=tuple(dict.fromkeys(names)),
        url=_text(raw.get("shortlink")),
        updated_at=_time(raw.get("updated_at")),
        page_id=page_id,
        kind=kind,
        created_at=_time(raw.get("created_at")),
    )


def _trust_incident(raw: Json, where: tuple[str, ...]) -> Incident:
    """Open while an impact has not ended (or none is listed: it is in the active list)."""
    impacts = raw.get("IncidentImpacts") or ()
    events = sorted(raw.get("IncidentEvents") or (), key=lambda e: str(e.get("createdAt") or ""))
    latest = events[-1] if events else {}
    ended = bool(impacts) and all(i.get("endTime") for i in impacts)
    ident = str(raw["id"])
    name = next((str(e["message"]) for e in events if isinstance(e.get("message"), str)), None)
    return Incident(
        id=f"trust-incident:{ident}",
        name=name or str(raw.get("externalId") or f"Trust incident #{ident}"),
        status="resolved" if ended else str(latest.get("type") or "active"),
        components=_trust_where(raw, where),
        url=f"{TRUST_PAGE}/incidents/{ident}",
        updated_at=_time(raw.get("updatedAt")),
        created_at=_time(raw.get("createdAt")),
    )


def _trust_maintenance(raw: Json, now: datetime, where: tuple[str, ...]) -> Incident:
    """In progress while an impact runs, or within its planned window; ended by an event."""
    ident = str(raw["id"])
    return Incident(
        id=f"trust-maintenance:{ident}",
        name=str(raw.get("name") or raw.get("externalId") or f"Trust maintenance #{ident}"),
        status=_maintenance_status(raw, now),
        components=_trust_where(raw, where),
        url=f"{TRUST_PAGE}/maintenances/{ident}",
        updated_at=_time(raw.get("updatedAt")),
        kind="maintenance",
    )


def _maintenance_status(raw: Json, now: datetime) -> str:
    events = sorted(raw.get("MaintenanceEvents") or (), key=lambda e: str(e.get("createdAt") or ""))
    if events and str(events[-1].get("type", "")).lower() in TRUST_ENDED:
        return "completed"
    windows = [(i.get("startTime"), i.get("endTime")) for i in raw.get("MaintenanceImpacts") or ()]
    windows.append((raw.get("plannedStartTime"), raw.get("plannedEndTime")))
    running = begun = False
    for start, end in windows:
        opened, closed = _time(start), _time(end)
        if opened is not None and opened <= now:
            begun = True
            if closed is None or now < closed:
                running = True
    if running:
        return "in progress"
    return "completed" if begun else "scheduled"


def _trust_where(raw: Json, where: tuple[str, ...]) -> tuple[str, ...]:
    """The instances it names; none (every service) when it affects all."""
    if raw.get("affectsAll"):
        return ()
    return tuple(dict.fromkeys(str(k) for k in raw.get("instanceKeys") or ())) or where


def _text(value: object) -> str | None:
    return str(value) if value else None


def _time(value: object) -> datetime | None:
    """An ISO 8601 time as the pages write it (`Z` or an offset); naive means UTC."""
    if not isinstance(value, str) or not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
