"""Librato alert webhooks: token → payload → the alerts view → reconcile → 202.

Librato posts a form with one field, `payload`, holding JSON (a raw JSON body is accepted
too, as is the KB's `{"payload": {...}}`). A triggered alert fires, one with `clear`
stops firing, and a test (`triggered_by_user_test`) is recorded as an event, not firing.
Only the services with an entry naming the alert (name or id) are reconciled.
"""

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field, ValidationError

from app.signals.alerts.facts import LIBRATO, Alert, describe, matching
from app.storage.audit import Event
from app.webhooks import alerts
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
SENDER = LIBRATO
FORM = "application/x-www-form-urlencoded"


class _Alert(BaseModel):
    id: int | str
    name: str
    runbook_url: str | None = None


class LibratoPayload(BaseModel):
    """The parts of a Librato alert notification Cascade reads."""

    alert: _Alert
    trigger_time: int | None = Field(None, ge=0, lt=253_402_300_800)  # unix seconds, < 10000
    clear: str | None = None  # "normal" when the alert cleared
    triggered_by_user_test: bool = False


def unwrap(body: bytes, content_type: str) -> Any:
    """The JSON a delivery carries: the form field `payload`, or the body itself (400 if none)."""
    if content_type.split(";")[0].strip().lower() == FORM or body.startswith(b"payload="):
        try:
            fields = parse_qs(body.decode(), strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            fields = {}
        if "payload" not in fields:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "no form field `payload`")
        body = fields["payload"][0].encode()
    raw = parse_json(body)
    inner = raw.get("payload") if isinstance(raw, dict) and "alert" not in raw else None
    if isinstance(inner, str):  # JSON in a JSON string, as in the form
        return parse_json(inner.encode())
    return inner if isinstance(inner, dict) else raw


def to_alert(payload: LibratoPayload) -> Alert:
    at = payload.trigger_time
    return Alert(
        source=LIBRATO,
        name=payload.alert.name,
        id=str(payload.alert.id),
        since=datetime.fromtimestamp(at, UTC) if at else None,
        url=payload.alert.runbook_url or None,
    )


@router.post(
    "/webhooks/librato",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookAnswer,
    responses=REFUSALS,
)
async def librato_webhook(request: Request) -> Response:
    return await answered(SENDER, request, receive)


async def receive(request: Request, intake: Intake) -> WebhookAnswer:
    body = await read_body(request)
    require_token(request, intake.token)
    raw = unwrap(body, request.headers.get("content-type", ""))
    now = datetime.now(UTC)
    await intake.store.heard(SENDER, now)
    try:
        payload = LibratoPayload.model_validate(raw)
    except ValidationError as error:
        raise not_the_shape("a Librato alert notification", error) from None
    alert = to_alert(payload)
    concerned = [s.name for s in intake.catalog.services if matching(s.every_alert, [alert])]
    if payload.triggered_by_user_test:
        message = f"Librato test notification of {describe(alert)}: recorded, not firing"
        await intake.audit.record(
            Event("signal.alert_test", message, now, details={"source": SENDER}),
            tuple(concerned),
        )
        return WebhookAnswer(status="accepted", detail=message, services=[])
    cleared = bool(payload.clear)
    firing, gone = ((), (alert,)) if cleared else ((alert,), ())
    services, recorded = await alerts.take(intake, SENDER, firing, gone, now)
    detail = f"{describe(alert)} {'cleared' if cleared else 'firing'}" + alerts.outdated(recorded)
    return WebhookAnswer(status="accepted", detail=detail, services=services)
