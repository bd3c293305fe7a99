"""`GET /`: the dashboard; `GET /dashboard/stream` keeps an open page up to date.

Drawn from the objects `/status` answers with (snapshot → plan → `render`), so
the page never disagrees with the API: a table of every service (`app.api.fleet`
says what its row shows), each row opening the service's card. The stream sends a
part of the page (an element with an id: a banner block, a service's row and card)
when its HTML changed; `app.storage.live` says which service may have, whichever Cascade
process changed it. Without JavaScript the page is whole (a row's name links to its card).
The delivery metrics' panel (`app.api.dora`) is drawn with the page only: it moves in days.
"""

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api import fleet
from app.api.deps import (
    AuditDep,
    CatalogDep,
    DoraDep,
    LiveDep,
    ReconcilerDep,
    SettingsDep,
    StoreDep,
    ViewsDep,
)
from app.api.dora import DEFAULT_DAYS, measured
from app.api.schemas import EventOut, PauseOut, PromotionOut, ServiceOut
from app.api.status import get_service_status, pause_out
from app.clock import utcnow
from app.config.catalog import Catalog
from app.config.durations import short, spoken
from app.config.settings import Settings
from app.engine.halter import BY as HALTED_BY
from app.engine.reconcile import Reconciler
from app.signals.views import Views
from app.storage.audit import Audit
from app.storage.client import UNAVAILABLE
from app.storage.live import EVERYTHING, Live
from app.storage.store import Store

log = logging.getLogger(__name__)
router = APIRouter(tags=["dashboard"])
APP_DIR = Path(__file__).resolve().parent.parent
STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
EVENTS_SHOWN = 15
BURST_SECONDS = 0.05  # news arriving together is drawn once
RETRY_MS = 2000  # how soon a page reconnects a lost stream
# The banners also tell what no feed announces (a refused reload of the services file is
# this process's news alone): with no news for this long, they are drawn again anyway.
QUIET_SECONDS = 2.0
# Text that changes with the clock alone ("3m ago", "12s" left): the page ticks it itself.
TICKING = re.compile(r"(<time [^>]*data-(?:ago|countdown)>)[^<]*(</time>)")
STATES = {  # a state is told by an icon and a word, never by colour alone
    "open": "✓",
    "closed": "✕",
    "unknown": "?",
    "waiting": "◷",
    "blocked": "⊘",
    "promoting": "⇢",
    "failed": "✕",
}
KINDS = {
    "promotion.started": "▶ promotion started",
    "promotion.succeeded": "✓ promoted",
    "promotion.failed": "✕ promotion failed",
    "promotion.retry": "↺ retry",
    "gate.changed": "◆ gates changed",
    "pause.set": "‖ paused",
    "pause.lifted": "▶ resumed",
    "service.halted": "⛔ halted",
    "rollback.started": "⏪ rollback started",
    "rollback.succeeded": "⏪ rolled back",
    "rollback.failed": "✕ rollback failed",
}


@dataclass(frozen=True)
class Page:
    """What the page is drawn from: the same readers `/status` and `/events` use."""

    catalog: Catalog
    settings: Settings
    reconciler: Reconciler
    store: Store
    views: Views
    audit: Audit


async def _page(
    catalog: CatalogDep,
    settings: SettingsDep,
    reconciler: ReconcilerDep,
    store: StoreDep,
    views: ViewsDep,
    audit: AuditDep,
) -> Page:
    return Page(catalog, settings, reconciler, store, views, audit)


PageDep = Annotated[Page, Depends(_page)]


@dataclass(frozen=True)
class Card:
    """One service as the page shows it: its `/status` object, and its repository for links."""

    service: ServiceOut
    repo: str | None
    status: fleet.Status

    def moving_into(self, app: str) -> PromotionOut | None:
        """The commit on its way into `app`, with what its gates say."""
        return next((p for p in self.service.promotions if p.to == app), None)

    @property
    def in_flight(self) -> list[PromotionOut]:
        return [p for p in self.service.promotions if p.commit]

    @property
    def search(self) -> str:
        """What the page's filter box matches: the name, every app and every commit."""
        s = self.service
        words = [s.name, *(x.app for x in s.stages), *(x.commit or "" for x in s.stages)]
        return " ".join([*words, *(p.commit or "" for p in s.promotions)]).lower()


def _ago(moment: datetime | None, now: datetime) -> str:
    return f"{spoken(now - moment)} ago" if moment else ""


def _left(moment: datetime | None, now: datetime) -> str:
    return spoken(moment - now) if moment and moment > now else "a moment"  # "opens in …"


def _seconds(value: float | None) -> str:
    return "-" if value is None else spoken(timedelta(seconds=value))


def _assets_version() -> str:
    digest = hashlib.sha256()
    for name in sorted(STATIC):
        digest.update((APP_DIR / "static" / name).read_bytes())
    return digest.hexdigest()[:12]


templates = Jinja2Templates(directory=APP_DIR / "templates")
templates.env.filters.update(short=short, hue=fleet.hue, ending=fleet.ending, seconds=_seconds)
templates.env.globals.update(
    ago=_ago,
    left=_left,
    STATES=STATES,
    KINDS=KINDS,
    ASSETS=_assets_version(),
    ICONS=fleet.ICONS,
    LABELS=fleet.LABELS,
    MOVES=fleet.MOVES,
    NEEDS_ME=sorted(fleet.NEEDS_ME),
    HALTED_BY=HALTED_BY,
)


@router.get("/", response_class=HTMLResponse, summary="The dashboard")
async def dashboard(request: Request, page: PageDep, record: DoraDep) -> HTMLResponse:
    catalog, reconciler = page.catalog, page.reconciler
    context = await _banners(page) | await _events(page.audit)
    everything = context["paused"]
    cards = [await _card(page, name, everything) for name in catalog.names()]
    context["cards"] = cards
    columns = _columns(catalog)
    widest = max((len(card.service.stages) for card in cards), default=0)
    context["columns"] = columns + [f"stage {n + 1}" for n in range(len(columns), widest)]
    context["counts"] = fleet.counts([card.status for card in cards])
    token = page.settings.admin_token
    context["admin"] = bool(token and token.get_secret_value())  # a yes or no, never the token
    context["names"] = catalog.names()
    since = reconciler.clock() - timedelta(days=DEFAULT_DAYS)
    context["dora"] = await measured(record, reconciler, catalog.services, since)
    context["dora_days"] = DEFAULT_DAYS
    return templates.TemplateResponse(request, "dashboard.html", context)


@router.get("/dashboard/stream", include_in_schema=False)
async def stream(page: PageDep, live: LiveDep) -> EventSourceResponse:
    return EventSourceResponse(_stream(page, live), ping=15, send_timeout=30)


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> FileResponse:
    if name not in STATIC:
        raise HTTPException(404, f"no static file {name!r}")
    cache = "public, max-age=86400"  # the page asks for ?v=<hash of the files>
    return FileResponse(
        APP_DIR / "static" / name, media_type=STATIC[name], headers={"Cache-Control": cache}
    )


async def _stream(page: Page, live: Live) -> AsyncIterator[ServerSentEvent]:
    """Every part of the page once, then each part again whenever its HTML changes."""
    yield ServerSentEvent(retry=RETRY_MS, comment="connected")
    async with live.watch() as changes:
        sent: dict[str, str] = {}
        touched = {EVERYTHING}
        while True:
            try:
                parts = await _parts(page, touched)
            except UNAVAILABLE as error:  # the page says "reconnecting" and comes back
                log.warning("dashboard stream: Redis unreachable: %s", type(error).__name__)
                return
            for part, html in parts:
                settled = TICKING.sub(r"\1\2", html)
                if sent.get(part) != settled:
                    sent[part] = settled
                    yield ServerSentEvent(data=html, event="swap")
            try:
                touched = await asyncio.wait_for(changes.next(), QUIET_SECONDS)
            except TimeoutError:
                touched = set()  # the banners and events only; sent if they changed
            await asyncio.sleep(BURST_SECONDS)


async def _parts(page: Page, touched: set[str]) -> list[tuple[str, str]]:
    """The parts of the page `touched` may have changed, as (element id, HTML)."""
    names = page.catalog.names()
    if EVERYTHING not in touched:
        names = [name for name in names if name in touched]
    banners = await _banners(page)
    parts = [("banners", _draw("_banners.html", banners))]
    columns = _columns(page.catalog)
    for name in names:
        try:
            card = await _card(page, name, banners["paused"])
        except HTTPException:  # no longer configured
            continue
        row = {"card": card, "now": utcnow(), "columns": columns}
        parts.append((f"service-{name}", _draw("_row.html", row)))
    parts.append(("events", _draw("_events.html", await _events(page.audit))))
    return parts


def _draw(template: str, context: dict[str, Any]) -> str:
    return templates.get_template(template).render(context)


async def _card(page: Page, name: str, everything: PauseOut | None) -> Card:
    service = await get_service_status(name, page.catalog, page.reconciler)
    configured = page.catalog.get(name)
    return Card(service, configured.repo if configured else None, fleet.status(service, everything))


def _columns(catalog: Catalog) -> list[str]:
    """The table's stage headings, from the services file alone: a row drawn on its own (the
    stream redraws one service) has the same headings as the whole page."""
    return fleet.columns([s.stages for s in catalog.services if s.stages])


async def _banners(page: Page) -> dict[str, Any]:
    paused: PauseOut | None = None
    pause = await page.store.pause(None)
    now = utcnow()
    if pause is not None and pause.active(now):
        paused = pause_out(pause)
    return {
        "now": now,
        "sandbox": page.settings.sandbox,
        "dry_run": page.settings.dry_run,
        "paused": paused,
        "sources": [(f.stale, f.describe(now)) for f in await page.views.freshness(now)],
        "config_problem": page.catalog.problem,  # the last reload refused, if so
    }


async def _events(audit: Audit) -> dict[str, Any]:
    events: Sequence[EventOut] = [
        EventOut.model_validate(e) for e in await audit.read(None, EVENTS_SHOWN)
    ]
    return {"events": events, "now": utcnow()}
