"""Heroku's edge in front of the sandbox's Platform API: what a request meets first.

Every response gets a Request-Id. A Platform API request needs a bearer token and the v3
Accept header, draws from the rate pool, may meet an injected fault (`app.sandbox.faults`),
and is logged in `Sandbox.requests` before it is answered. Refusals carry Heroku's
`{id, message}` body (`heroku_error`). `/_sandbox` passes straight through.
"""

import asyncio
import re
from collections import deque
from datetime import UTC, datetime
from typing import Protocol

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from starlette.middleware.base import RequestResponseEndpoint

from app.sandbox.faults import Faults, RatePool
from app.sandbox.hooks import API_MEDIA_TYPE, WebhookSender
from app.sandbox.resources import Json, new_id
from app.sandbox.world import World

_ACCEPT = re.compile(r"application/vnd\.heroku\+json;\s*version=3(\.[\w-]+)?(?![\w.])")
_ERROR_IDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    406: "not_acceptable",
    409: "conflict",
    416: "requested_range_not_satisfiable",
    422: "invalid_params",
    429: "rate_limit",
    503: "service_unavailable",
}
_RATE_LIMIT_MESSAGE = (
    "Your account reached the API rate limit\nPlease wait a few minutes before making new requests"
)


def _stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def heroku_error(status: int, message: str, error_id: str | None = None) -> JSONResponse:
    """Heroku's error body: `{id, message}`."""
    default = "internal_server_error" if status >= 500 else "bad_request"
    body = {"id": error_id or _ERROR_IDS.get(status, default), "message": message}
    return JSONResponse(body, status_code=status)


class Guarded(Protocol):
    """What the edge reads of the sandbox on each request (faults and pool may be replaced)."""

    requests: deque[Json]
    faults: Faults
    rate: RatePool


class Served(Guarded, Protocol):
    """What the sandbox's routes ask of it (`app.sandbox.Sandbox` is one): a Protocol, so that
    the routes need not import the package that builds them."""

    world: World
    webhooks: WebhookSender

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def deploy(
        self, app: str, commit: str | None = None, *, succeed: bool = True
    ) -> Json: ...

    def roll_back(self, app: str, body: object) -> Json: ...

    def promote(self, body: object) -> Json: ...

    def hold_releases(self, hold: bool) -> None: ...


class Edge:
    """Heroku's edge: Request-Id everywhere; on the Platform API auth, Accept, rate, faults."""

    def __init__(self, sandbox: Guarded) -> None:
        self.sandbox = sandbox

    async def __call__(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        request_id, path = new_id(), request.url.path
        if path.startswith("/_sandbox"):
            response = await call_next(request)
        else:  # logged before answering: a caller killed mid-request still shows up
            entry: Json = {"at": _stamp(), "method": request.method, "path": path}
            entry |= {"query": request.url.query, "status": None, "request_id": request_id}
            self.sandbox.requests.append(entry)
            response = self._refusal(request) or await self._faulty(request, call_next)
            response.headers["RateLimit-Remaining"] = str(self.sandbox.rate.remaining())
            entry["status"] = response.status_code
        response.headers["Request-Id"] = request_id
        return response

    def _refusal(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return heroku_error(401, "Invalid credentials provided.")
        if not _ACCEPT.search(request.headers.get("Accept", "")):
            return heroku_error(406, f"Please specify a version: `Accept: {API_MEDIA_TYPE}`.")
        if request.url.path != "/account/rate-limits" and not self.sandbox.rate.take():
            return heroku_error(429, _RATE_LIMIT_MESSAGE)
        return None

    async def _faulty(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        """The request, as the injected faults (delays, errors) let it through."""
        faults, method, path = self.sandbox.faults, request.method, request.url.path
        delay = faults.delay_for(method, path)
        if delay is not None and not delay.after:
            await asyncio.sleep(delay.seconds)
        fault = faults.error_for(method, path)
        if fault is None:
            response = await call_next(request)
        else:
            if fault.after:  # it happens; the caller hears an error anyway
                done = await call_next(request)
                async for _ in done.body_iterator:  # type: ignore[attr-defined]
                    pass
            response = heroku_error(
                fault.status, "Injected by the sandbox (POST /_sandbox/faults)."
            )
        if delay is not None and delay.after:
            await asyncio.sleep(delay.seconds)
        return response
