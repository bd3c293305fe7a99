"""What every sender's route shares: its `Intake`, its answer, its bookkeeping, the shared token.

A route is `answered(SENDER, request, receive)`: `receive` is handed the one `Intake` the
composition root (`app.runtime`) built, so no route looks anything up; every delivery is
counted by outcome (`/metrics`) and logged; a refusal is logged with its reason and re-raised.
"""

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fastapi import HTTPException, Request, Response, status
from pydantic import BaseModel, SecretStr, ValidationError

from app import logs
from app.config.catalog import Catalog
from app.core.bearer import bearer, matches
from app.core.refusals import errors
from app.engine.topologies import Topologies
from app.metrics import Metrics
from app.signals.views import Views
from app.storage.audit import Audit
from app.storage.store import Store

log = logging.getLogger("app.webhooks")
TOKEN_SETTING = "CASCADE_WEBHOOK_TOKEN"


@dataclass(frozen=True)
class Intake:
    """What the webhooks verify with, record into and tell: made once, at start-up."""

    catalog: Catalog
    store: Store
    views: Views
    audit: Audit
    metrics: Metrics
    topologies: Topologies  # which service a stage app is in
    enqueue: Callable[[str], None]  # a reconcile of the service, soon
    clock: Callable[[], datetime]  # the engine's: a release is heard and folded on it
    heroku_secret: SecretStr | None
    github_secret: SecretStr | None
    token: SecretStr | None  # CASCADE_WEBHOOK_TOKEN, for the senders that cannot sign

    def reconcile(self, services: Iterable[str]) -> list[str]:
        """Enqueue a reconcile of each service a signal concerns (and only those); their names."""
        names = sorted(set(services))
        for name in names:
            self.enqueue(name)
        return names

    async def once(
        self, sender: str, delivery: str | None, record: Callable[[], Awaitable[object]]
    ) -> bool:
        """`record` a delivery unless its id was seen before (False then): the id's mark is
        taken first and given back should `record` fail, so a retry is taken in again."""
        if delivery and not await self.store.first_sighting(sender, delivery):
            return False
        try:
            await record()
        except Exception:
            if delivery:
                await self.store.forget_sighting(sender, delivery)
            raise
        return True


class WebhookAnswer(BaseModel):
    status: Literal["accepted", "duplicate", "ignored"]
    detail: str
    service: str | None = None  # the one service a release concerns (Heroku)
    services: list[str] | None = None  # the services a signal concerns, reconciled at once


Receiver = Callable[[Request, Intake], Awaitable[WebhookAnswer]]


def intake_of(request: Request) -> Intake:
    """The app's intake; 503 while Cascade starts (the sender retries)."""
    intake: Intake | None = getattr(request.app.state, "intake", None)
    if intake is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "Cascade is starting")
    return intake


async def answered(
    sender: str, request: Request, receive: Receiver, status_code: int = status.HTTP_202_ACCEPTED
) -> Response:
    """The route of every sender: `receive` the delivery, count and log it, answer with JSON.

    A plain `Request -> Response` endpoint: resolving a dependency, header parameters and
    a response model for every delivery cost FastAPI a fifth of the route's CPU (1.13x
    deliveries/s without them, bench/NOTES.md 18). The decorator still documents the
    answer (`response_model`) and the headers (`headers`).
    """
    intake = intake_of(request)
    try:
        answer = await receive(request, intake)
    except HTTPException as error:
        intake.metrics.webhook(sender, "refused" if error.status_code < 500 else "error")
        said = logs.fields(status=error.status_code)
        log.warning(
            "%s webhook refused (%d): %s", sender, error.status_code, error.detail, extra=said
        )
        logs.request_told()
        raise
    except Exception:
        intake.metrics.webhook(sender, "error")
        raise
    intake.metrics.webhook(sender, answer.status)
    said = logs.fields(status=status_code)
    log.info("%s webhook %s: %s", sender, answer.status, answer.detail, extra=said)
    logs.request_told()  # this line is the delivery's access line too
    return Response(answer.model_dump_json(), status_code, media_type="application/json")


def headers(*names: str) -> dict[str, Any]:
    """`openapi_extra` naming the headers a sender's route reads (all optional: a missing
    signature is a 401, not a 422)."""
    parameters = [
        {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
        for name in names
    ]
    return {"parameters": parameters}


def require_token(request: Request, token: SecretStr | None) -> None:
    """Senders that cannot sign: `?token=` or `Authorization: Bearer`, compared in constant time."""
    if token is None or not token.get_secret_value():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"{TOKEN_SETTING} is not set, so Cascade refuses every delivery here: set it and"
            " add ?token=<it> to the webhook URL, or send Authorization: Bearer <it>",
        )
    given = bearer(request.headers.get("authorization"))
    if given is None:
        given = request.query_params.get("token")
    if not given:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"no token: add ?token=<{TOKEN_SETTING}> to the webhook URL, or send"
            " Authorization: Bearer <it>",
        )
    if not matches(given, token.get_secret_value()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"the token does not match: use the value of {TOKEN_SETTING}",
        )


REFUSALS = errors(
    {
        400: "the body is not JSON",
        401: "not authentic: no or wrong signature or token, or its secret is not set",
        413: "the body is over 1 MiB",
        422: "JSON, but not the sender's event shape",
        503: "Redis is unreachable: the sender should retry",
    }
)


def not_the_shape(what: str, error: ValidationError) -> HTTPException:
    """422 for JSON that is not the sender's event: where it breaks the shape, and how."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the body"
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT, f"not {what}: {where}: {first['msg']}"
    )
