"""The status page reader: one GET of `STATUS_API_URL`, its body recognised by its shape.

A reader per shape: Heroku's v4 `current-status` and a Statuspage `summary.json`. Heroku's
status may move to the Salesforce Trust API: that would be one more `Reader` in `READERS`.
Every failure comes back as `StatusFeedError` with a message saying what to check.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from app.signals.incidents import Component, Feed, Incident

MAX_INCIDENTS = 200  # a page listing more is truncated: enough to keep the gate closed
Json = dict[str, Any]


class StatusFeedError(Exception):
    """The status page could not be read, or its answer was not understood."""


@dataclass(frozen=True)
class Reader:
    name: str
    fits: Callable[[Json], bool]  # recognises the shape from the top-level keys
    read: Callable[[Json, datetime], Feed]


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
    listed = [*body["incidents"], *(body.get("scheduled_maintenances") or ())][:MAX_INCIDENTS]
    incidents = tuple(_statuspage_incident(i, page_id) for i in listed)
    return Feed(
        now,
        tuple(i for i in incidents if i.open),
        tuple(c for c in components if c.troubled),
        page_id,
    )


READERS: tuple[Reader, ...] = (
    Reader(
        "Heroku v4 current-status",
        lambda b: isinstance(b.get("status"), list) and isinstance(b.get("incidents"), list),
        read_heroku_v4,
    ),
    Reader(
        "Statuspage summary.json",
        lambda b: (
            isinstance(b.get("page"), dict)
            and isinstance(b.get("components"), list)
            and isinstance(b.get("incidents"), list)
        ),
        read_statuspage,
    ),
)


def recognise(body: object) -> Reader:
    """The reader for `body`'s shape; `StatusFeedError` when none fits."""
    if isinstance(body, dict):
        for reader in READERS:
            if reader.fits(body):
                return reader
    keys = ", ".join(sorted(map(str, body))[:8]) if isinstance(body, dict) else type(body).__name__
    shapes = " nor a ".join(r.name for r in READERS)
    raise StatusFeedError(f"the answer is neither a {shapes} (it has: {keys})")


def parse(body: object, now: datetime) -> Feed:
    reader = recognise(body)
    assert isinstance(body, dict)  # recognise refuses anything else
    try:
        return reader.read(body, now)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise StatusFeedError(
            f"looks like a {reader.name} but could not be read: {type(error).__name__}: {error}"
        ) from None


class StatusFeed:
    """One HTTP client for `STATUS_API_URL`."""

    def __init__(
        self,
        url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.url = url
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
            follow_redirects=True,
            headers={"Accept": "application/json", "User-Agent": "cascade"},
        )

    async def read(self, now: datetime) -> Feed:
        try:
            response = await self._http.get(self.url)
        except httpx.HTTPError as error:
            raise StatusFeedError(f"{type(error).__name__}: {error}".rstrip(": ")) from None
        if response.status_code == 404:
            raise StatusFeedError(
                "HTTP 404: check STATUS_API_URL (Heroku's v4 feed may have moved to the"
                " Salesforce Trust API, https://status.salesforce.com/products/Heroku)"
            )
        if response.status_code != 200:
            raise StatusFeedError(f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise StatusFeedError("the answer is not JSON: check STATUS_API_URL") from None
        return parse(body, now)

    async def aclose(self) -> None:
        await self._http.aclose()


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
    )


def _statuspage_incident(raw: Json, page_id: str | None) -> Incident:
    names = [str(c["name"]) for c in raw.get("components") or ()]
    return Incident(
        id=str(raw["id"]),
        name=str(raw["name"]),
        status=str(raw["status"]),
        components=tuple(dict.fromkeys(names)),
        url=_text(raw.get("shortlink")),
        updated_at=_time(raw.get("updated_at")),
        page_id=page_id,
    )


def _text(value: object) -> str | None:
    return str(value) if value else None


def _time(value: object) -> datetime | None:
    """An ISO 8601 time as the pages write it (`Z` or an offset); naive means UTC."""
    if not isinstance(value, str) or not value:
        return None
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
