"""GitHub webhooks (`push`, `status`, `check_suite`, `ping`): verify → parse → record → enqueue.

A push to a service's branch proves its commits are on it (and orders its heads); a forced
push or a deleted branch voids what was known of the repository. Statuses and completed
check suites matter to services with `require_checks`. Only the services of the delivery's
repository (and branch) are reconciled. A repeated `X-GitHub-Delivery` changes nothing.
Either content type GitHub offers is read: JSON, or a form whose `payload` field is the JSON
(the signature is over the raw body in both).
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ValidationError

from app import logs
from app.config.durations import short
from app.config.services import Service
from app.signals.github.facts import OWN_CONTEXT, CheckReport, Push
from app.webhooks.auth import (
    json_of_form,
    parse_json,
    read_body,
    require_secret,
    verify_hex_hmac,
)
from app.webhooks.intake import (
    REFUSALS,
    Intake,
    WebhookAnswer,
    answered,
    headers,
    not_the_shape,
)

router = APIRouter(tags=["webhooks"])
SENDER = "github"
SIGNATURE = "X-Hub-Signature-256"
EVENT = "X-GitHub-Event"
DELIVERY = "X-GitHub-Delivery"
SECRET_SETTING = "GITHUB_WEBHOOK_SECRET"
BRANCH_REF = "refs/heads/"
P = TypeVar("P", bound=BaseModel)


class _Repository(BaseModel):
    full_name: str


class _Commit(BaseModel):
    id: str


class PushPayload(BaseModel):
    ref: str
    before: str
    after: str
    forced: bool = False
    deleted: bool = False
    commits: list[_Commit] = []
    head_commit: _Commit | None = None
    repository: _Repository


class StatusPayload(BaseModel):
    sha: str
    context: str
    state: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    repository: _Repository


class _App(BaseModel):
    slug: str | None = None
    name: str | None = None


class _Suite(BaseModel):
    id: int
    head_sha: str
    status: str | None = None
    conclusion: str | None = None
    app: _App | None = None
    updated_at: datetime | None = None


class CheckSuitePayload(BaseModel):
    action: str
    check_suite: _Suite
    repository: _Repository


@dataclass(frozen=True)
class _Delivery:
    """What a delivery means: the services it concerns and how to record it."""

    services: list[Service]
    detail: str
    record: Callable[[], Awaitable[object]]  # behind the delivery's id (`Intake.once`)


def _missing(sha: str) -> bool:
    """GitHub's all-zero commit: no branch before (created) or after (deleted)."""
    return not sha.strip("0")


def to_push(payload: PushPayload) -> Push:
    listed = [c.id for c in payload.commits]
    if payload.head_commit is not None:
        listed.append(payload.head_commit.id)
    deleted = payload.deleted or _missing(payload.after)
    return Push(
        repo=payload.repository.full_name,
        branch=payload.ref.removeprefix(BRANCH_REF),
        before=None if _missing(payload.before) else payload.before,
        after=None if deleted else payload.after,
        commits=tuple(dict.fromkeys(listed)),
        forced=payload.forced,
    )


def _of_repo(intake: Intake, repo: str) -> list[Service]:
    return [s for s in intake.catalog.services if s.repo and s.repo.lower() == repo.lower()]


def _validated(model: type[P], body: bytes) -> P:
    """The payload, validated straight from the bytes: one pass, and a 7 KB push's fields
    that Cascade does not read never become Python objects. Should that fail, JSON first,
    to tell a body that is not JSON (400) from one of the wrong shape (ValidationError)."""
    try:
        return model.model_validate_json(body)
    except ValidationError:
        return model.model_validate(parse_json(body))


def _push(intake: Intake, body: bytes, now: datetime) -> _Delivery | str:
    payload = _validated(PushPayload, body)
    repo = payload.repository.full_name
    if not payload.ref.startswith(BRANCH_REF):
        return f"{payload.ref} is not a branch"
    push = to_push(payload)
    services = _of_repo(intake, repo)
    if not services:
        return f"{repo} is the repo of no configured service"
    followers = [s for s in services if s.branch == push.branch]
    if not followers:
        return f"no service follows {push.branch} of {repo}"
    if push.after is None:
        detail = f"{push.branch} of {repo} deleted: what was known of its history is dropped"
    elif push.rewrites:
        detail = f"forced push to {push.branch} of {repo} ({short(push.after)}): cache dropped"
    else:
        detail = (
            f"push to {push.branch} of {repo}: {short(push.after)}, {len(push.commits)} commits"
        )
    concerned = services if push.rewrites else followers  # a rewrite voids the repo's cache
    github = intake.views.github
    return _Delivery(concerned, detail, lambda: github.record_push(push))


def _checked(intake: Intake, repo: str) -> list[Service]:
    return [s for s in _of_repo(intake, repo) if s.require_checks]


def _status(intake: Intake, body: bytes, now: datetime) -> _Delivery | str:
    payload = _validated(StatusPayload, body)
    repo, context = payload.repository.full_name, payload.context
    if context.startswith(OWN_CONTEXT):
        return f"{context} is Cascade's own status"
    services, github = _checked(intake, repo), intake.views.github
    if not services:
        return f"no service of {repo} has require_checks"
    at = payload.updated_at or payload.created_at or now
    report = CheckReport(repo, payload.sha, f"status:{context}", context, payload.state, at)
    detail = f"{context} {payload.state} on {short(payload.sha)}"
    return _Delivery(services, detail, lambda: github.record_check(report))


def _check_suite(intake: Intake, body: bytes, now: datetime) -> _Delivery | str:
    payload = _validated(CheckSuitePayload, body)
    repo, suite = payload.repository.full_name, payload.check_suite
    if payload.action != "completed":
        return f"check_suite {payload.action}: only completed suites matter"
    services, github = _checked(intake, repo), intake.views.github
    if not services:
        return f"no service of {repo} has require_checks"
    app = (suite.app.slug or suite.app.name) if suite.app else None
    name = app or f"check suite {suite.id}"
    state = suite.conclusion or suite.status or "pending"
    at = suite.updated_at or now
    report = CheckReport(repo, suite.head_sha, f"suite:{suite.id}", name, state, at)
    detail = f"{name} {state} on {short(suite.head_sha)}"
    return _Delivery(services, detail, lambda: github.record_check(report))


def _unused(event: str | None, raw: Any) -> WebhookAnswer:
    """The answer to a ping, or to an event Cascade does not use."""
    if event == "ping":
        zen = raw.get("zen") if isinstance(raw, dict) else None
        return WebhookAnswer(status="accepted", detail=f"pong: {zen or 'hello'}")
    return WebhookAnswer(status="ignored", detail=f"{event or 'an unnamed'} event: not used")


EVENTS: dict[str, Callable[[Intake, bytes, datetime], _Delivery | str]] = {
    "push": _push,
    "status": _status,
    "check_suite": _check_suite,
}


@router.post(
    "/webhooks/github",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=WebhookAnswer,
    responses={200: {"description": "a ping, answered"}, **REFUSALS},
    openapi_extra=headers(SIGNATURE, EVENT, DELIVERY),
)
async def github_webhook(request: Request) -> Response:
    ping = request.headers.get(EVENT) == "ping"
    return await answered(
        SENDER, request, receive, status.HTTP_200_OK if ping else status.HTTP_202_ACCEPTED
    )


async def receive(request: Request, intake: Intake) -> WebhookAnswer:
    body = await read_body(request)
    secret = require_secret(intake.github_secret, SECRET_SETTING)
    verify_hex_hmac(secret, body, request.headers.get(SIGNATURE), SIGNATURE)
    body = json_of_form(body, request.headers.get("content-type"))  # signed as sent, read as JSON
    event, delivery = request.headers.get(EVENT), request.headers.get(DELIVERY)
    now = datetime.now(UTC)
    meaning = EVENTS.get(event or "")
    try:
        found = meaning(intake, body, now) if meaning else _unused(event, parse_json(body))
    except ValidationError as error:
        raise not_the_shape(f"a GitHub {event} event", error) from None
    await intake.store.heard(SENDER, now)
    logs.bind(delivery_id=delivery, event=event)
    if isinstance(found, WebhookAnswer):
        return found
    if isinstance(found, str):
        return WebhookAnswer(status="ignored", detail=found)
    if not await intake.once(SENDER, delivery, found.record):
        return WebhookAnswer(status="duplicate", detail=f"delivery {delivery} already seen")
    names = intake.reconcile(s.name for s in found.services)
    return WebhookAnswer(status="accepted", detail=found.detail, services=names)
