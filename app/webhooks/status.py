"""Statuspage-style webhooks: token → parse → keep the newest news → enqueue who it concerns.

An incident (created, updated, resolved; a scheduled maintenance too) or a component's
status change. Statuspage sends no delivery id: a repeat is recognised as news no newer
than what is kept. Only services watching a component the news names (or watching none)
are reconciled; an incident naming no component concerns every service.
"""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, ValidationError

from app.signals.incidents.facts import Component, Incident
from app.signals.incidents.view import SOURCE, affected
from app.webhooks.auth import parse_json, read_body
from app.webhooks.intake import (
    REFUSALS,
    Intake,
    WebhookAnswer,
    answered,
    not_the_shape,
    require_token,
)

router = APIRouter(tags=["webhooks"])
SENDER = SOURCE


class _Named(BaseModel):
    name: str


class _Update(BaseModel):
    affected_components: list[_Named] | None = None


class _Page(BaseModel):
    id: str | None = None


class _Incident(BaseModel):
    id: str
    name: str
    status: str
    updated_at: datetime | None = None
    created_at: datetime | None = None
    shortlink: str | None = None
    components: list[_Named] | None = None
    incident_updates: list[_Update] | None = None


class _Component(BaseModel):
    name: str
    status: str
    updated_at: datetime | None = None


class _ComponentUpdate(BaseModel):
    created_at: datetime | None = None


class IncidentPayload(BaseModel):
    """The parts of an incident delivery Cascade reads; everything else is ignored."""

    page: _Page | None = None
    incident: _Incident


class ComponentPayload(BaseModel):
    page: _Page | None = None
    component: _Component
    component_update: _ComponentUpdate | None = None


def parse(raw: Any, now: datetime) -> Incident | Component | None:
    """The news a delivery carries; None when it is neither an incident nor a component."""
    if not isinstance(raw, dict):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "not a Statuspage webhook: expected an object"
        )
    if "incident" in raw:
        incident = IncidentPayload.model_validate(raw)
        return to_incident(incident, now)
    if "component" in raw:
        return to_component(ComponentPayload.model_validate(raw), now)
    return None


def to_incident(payload: IncidentPayload, now: datetime) -> Incident:
    data = payload.incident
    names = [c.name for c in data.components or ()]
    names += [c.name for u in data.incident_updates or () for c in u.affected_components or ()]
    return Incident(
        id=data.id,
        name=data.name,
        status=data.status,
        components=tuple(dict.fromkeys(names)),
        url=data.shortlink,
        updated_at=_utc(data.updated_at) or now,
        page_id=payload.page.id if payload.page else None,
        created_at=_utc(data.created_at),
    )


def to_component(payload: ComponentPayload, now: datetime) -> Component:
    data, update = payload.component, payload.component_update
    at = data.updated_at or (update.created_at if update else None)
    return Component(
        name=data.name,
        status=data.status,
        updated_at=_utc(at) or now,
        page_id=payload.page.id if payload.page else None,
    )


@router.post(
    "/webhooks/status",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookAnswer,
    responses=REFUSALS,
)
async def status_webhook(request: Request) -> Response:
    return await answered(SENDER, request, receive)


async def receive(request: Request, intake: Intake) -> WebhookAnswer:
    body = await read_body(request)
    require_token(request, intake.token)
    raw = parse_json(body)
    now = datetime.now(UTC)
    first = SENDER not in await intake.store.last_heard()
    await intake.store.heard(SENDER, now)
    try:
        news = parse(raw, now)
    except ValidationError as error:
        raise not_the_shape("a Statuspage incident or component webhook", error) from None
    if news is None:
        return WebhookAnswer(status="ignored", detail="neither an incident nor a component update")
    views = intake.views.incidents
    if isinstance(news, Incident):
        touched = await views.record_incident(news, now)
        what = f"incident '{news.name}' {news.status}"
    else:
        touched = await views.record_component(news, now)
        what = f"component '{news.name}' {news.status}"
    services = intake.catalog.services
    # The first status webhook ever heard makes the gate known for every service.
    names = [s.name for s in services] if first else affected(services, touched)
    if not touched and not first:
        return WebhookAnswer(status="duplicate", detail=f"{what}: no newer than what is known")
    return WebhookAnswer(status="accepted", detail=what, services=intake.reconcile(names))


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
