"""Heroku app webhooks (`api:release`): verify → parse → fold into the view → enqueue → 202.

A release webhook carries the slug's commit, so it costs no Platform API call. A Fir
release names an OCI image and no commit: its commit comes from the cache of builds, else
the service's pipeline is re-read by the reconcile the delivery enqueues (`HerokuClient`).
Repeats are recognised by delivery id and by (app, version, status). Every delivery is
counted by outcome (`/metrics`) and logged with its delivery id, service and commit.
"""

from dataclasses import replace
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ValidationError

from app import logs
from app.core.models import ArtifactKind, Release, ReleaseStatus
from app.core.order import rolled_back_to
from app.storage.store import Store
from app.webhooks.auth import parse_json, read_body, require_secret, verify_base64_hmac
from app.webhooks.intake import (
    REFUSALS,
    Intake,
    WebhookAnswer,
    answered,
    headers,
    not_the_shape,
)

router = APIRouter(tags=["webhooks"])
SENDER = "heroku"
SIGNATURE = "Heroku-Webhook-Hmac-SHA256"


class _Ref(BaseModel):
    id: str


class _App(BaseModel):
    id: str
    name: str


class _Slug(BaseModel):
    id: str
    commit: str | None = None


class _Artifact(BaseModel):
    type: str
    id: str


class _Release(BaseModel):
    id: str
    version: int
    status: ReleaseStatus
    created_at: datetime
    app: _App
    slug: _Slug | None = None
    artifacts: list[_Artifact] | None = None  # a Fir release's OCI image, its slug null
    description: str | None = None  # "Rollback to v10" says which older release it brings back


class _Metadata(BaseModel):
    delivery: _Ref


class ReleasePayload(BaseModel):
    """The parts of an `api:release` event Cascade reads; everything else is ignored."""

    id: str
    action: str
    resource: str
    data: _Release
    webhook_metadata: _Metadata | None = None


def to_release(payload: ReleasePayload) -> Release:
    data = payload.data
    image = None if data.slug else _oci_image(data.artifacts or [])
    return Release(
        id=data.id,
        app=data.app.name,
        app_id=data.app.id,
        version=data.version,
        status=data.status,
        commit=data.slug.commit if data.slug else None,
        slug_id=data.slug.id if data.slug else None,
        oci_image_id=image,
        created_at=data.created_at,
        rollback_of=rolled_back_to(data.description),
    )


def _oci_image(artifacts: list[_Artifact]) -> str | None:
    return next((a.id for a in artifacts if a.type == ArtifactKind.OCI_IMAGE), None)


def parse(body: bytes) -> ReleasePayload | None:
    """A release event, or None for an event kind that does not matter.

    Nearly every delivery is a release event: validated straight from the bytes, in one
    pass. Anything else is read as JSON first, to tell an event kind that does not matter
    (None) from a release of the wrong shape (ValidationError) or no JSON at all (400).
    """
    try:
        payload = ReleasePayload.model_validate_json(body)
    except ValidationError:
        raw = parse_json(body)
        if not isinstance(raw, dict) or not _matters(raw.get("resource"), raw.get("action")):
            return None
        return ReleasePayload.model_validate(raw)
    return payload if _matters(payload.resource, payload.action) else None


def _matters(resource: Any, action: Any) -> bool:
    return resource == "release" and action in ("create", "update")


@router.post(
    "/webhooks/heroku",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookAnswer,
    responses=REFUSALS,
    openapi_extra=headers(SIGNATURE),
)
async def heroku_webhook(request: Request) -> Response:
    return await answered(SENDER, request, receive)


async def receive(request: Request, intake: Intake) -> WebhookAnswer:
    body = await read_body(request)
    secret = require_secret(intake.heroku_secret, "HEROKU_WEBHOOK_SECRET")
    verify_base64_hmac(secret, body, request.headers.get(SIGNATURE), SIGNATURE)
    try:
        payload = parse(body)
    except ValidationError as error:
        raise not_the_shape("an api:release event", error) from None
    if payload is None:
        return WebhookAnswer(status="ignored", detail="not an api:release create/update event")
    release = to_release(payload)
    delivery = payload.webhook_metadata.delivery.id if payload.webhook_metadata else None
    service = intake.topologies.owner_of(intake.catalog.config, release.app)
    if service is not None:
        release = await _with_commit(intake.store, release)
    logs.bind(
        delivery_id=delivery, commit=release.commit, service=service.name if service else None
    )
    if service is None:
        return WebhookAnswer(status="ignored", detail=f"{release.app} is in no configured service")
    # Heard only from a release of a service: a delivery Cascade ignores or refuses changes nothing
    await intake.store.heard(SENDER, intake.clock())
    ids = [f"{release.app}:v{release.version}:{release.status}"]
    if payload.webhook_metadata is not None:
        ids.append(payload.webhook_metadata.delivery.id)
    # Stored and marked seen in one atomic step: a retry after Redis failed is taken in again
    # rather than dropped as a duplicate (folding a release twice is harmless).
    folded = await intake.store.put_release(
        service.name, release, intake.clock(), sighting=(SENDER, ids)
    )
    if not folded.first:
        return WebhookAnswer(status="duplicate", detail="already seen", service=service.name)
    if release.commit is None and release.artifact is not None:
        await intake.store.resync_soon(service.name)  # the reconcile asks Heroku for it
    intake.enqueue(service.name)
    detail = f"{release.app} v{release.version} {release.status}"
    return WebhookAnswer(status="accepted", detail=detail, service=service.name)


async def _with_commit(store: Store, release: Release) -> Release:
    """The release with its build's commit when the payload has none: a Fir release names
    only its OCI image, whose commit is cached once read (a promotion copies the image)."""
    if release.commit is not None or release.artifact is None:
        return release
    return replace(release, commit=await store.get(release.artifact))
