"""Prometheus Alertmanager webhooks (version 4): token → alerts → the alerts view → 202.

One notification carries a group's alerts, each with its own status: a firing one is
kept by its `fingerprint` (each repeat refreshes it), a resolved one is forgotten, in the
order of the alerts' own times (`startsAt`, `endsAt`), not of arrival. Only
the services with an entry matching one of its alerts (by `alertname`, and the labels an
entry names) are reconciled. A notification that `max_alerts` cut (`truncatedAlerts`)
makes the alerts gate unknown for every entry an alert of its group could match, until
the group's next whole notification.
"""

import hashlib
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import AwareDatetime, BaseModel, Field, ValidationError

from app.signals.alerts.facts import ALERTMANAGER, Alert
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
SENDER = ALERTMANAGER
VERSION = "4"
EPOCH = datetime(1970, 1, 2, tzinfo=UTC)  # Alertmanager's "no time" is 0001-01-01


class _Alert(BaseModel):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    starts_at: AwareDatetime | None = Field(None, alias="startsAt")  # RFC 3339, with a zone
    ends_at: AwareDatetime | None = Field(None, alias="endsAt")
    generator_url: str | None = Field(None, alias="generatorURL")
    fingerprint: str | None = None  # absent before Alertmanager 0.19: derived from the labels


class AlertmanagerPayload(BaseModel):
    """The parts of a webhook notification Cascade reads."""

    version: str
    alerts: list[_Alert]
    truncated: int = Field(0, ge=0, alias="truncatedAlerts")
    group_key: str = Field("", alias="groupKey")
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")


def parse(raw: object) -> AlertmanagerPayload:
    """The notification, or 422 saying what is not as Alertmanager sends it."""
    try:
        payload = AlertmanagerPayload.model_validate(raw)
    except ValidationError as error:
        raise not_the_shape("an Alertmanager notification", error) from None
    if payload.version != VERSION:
        raise HTTPException(
            422, f"Cascade reads version {VERSION} of Alertmanager's webhook, not {payload.version}"
        )
    for index, alert in enumerate(payload.alerts):
        if not alert.labels.get("alertname"):
            raise HTTPException(422, f"alerts.{index}: no alertname label")
    return payload


def to_alert(alert: _Alert) -> Alert:
    starts = alert.starts_at if alert.starts_at and alert.starts_at > EPOCH else None
    ends = alert.ends_at if alert.ends_at and alert.ends_at > EPOCH else None
    return Alert(
        source=ALERTMANAGER,
        name=alert.labels["alertname"],
        id=alert.fingerprint or _fingerprint(alert.labels),
        labels=alert.labels,
        since=starts,
        url=alert.generator_url or None,
        until=ends if alert.status == "resolved" else None,  # a firing one's is a guess
    )


def _fingerprint(labels: dict[str, str]) -> str:
    text = "\xff".join(f"{k}\xff{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@router.post(
    "/webhooks/alertmanager",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookAnswer,
    responses=REFUSALS,
)
async def alertmanager_webhook(request: Request) -> Response:
    return await answered(SENDER, request, receive)


async def receive(request: Request, intake: Intake) -> WebhookAnswer:
    body = await read_body(request)
    require_token(request, intake.token)
    raw = parse_json(body)
    now = datetime.now(UTC)
    await intake.store.heard(SENDER, now)
    payload = parse(raw)
    firing = [to_alert(a) for a in payload.alerts if a.status == "firing"]
    resolved = [to_alert(a) for a in payload.alerts if a.status == "resolved"]
    group = payload.group_key or _fingerprint(payload.group_labels)
    await intake.views.alerts.record_truncated(
        group, payload.group_labels, payload.truncated, now
    )  # first: a gate must not open on the part of the list that came
    services, recorded = await alerts.take(intake, SENDER, firing, resolved, now)
    detail = f"{len(firing)} firing, {len(resolved)} resolved" + alerts.outdated(recorded)
    if payload.truncated:  # max_alerts cut the list: unknown for the entries they may match
        detail += f", {payload.truncated} left out (set max_alerts: 0 for Cascade)"
    return WebhookAnswer(status="accepted", detail=detail, services=services)
