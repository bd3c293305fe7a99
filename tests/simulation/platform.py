"""The Platform API as the scheduler lets it answer: every call parks until it is released.

Cascade's `HerokuClient` talks to the sandbox's ASGI app through `ParkingTransport`. Each
request becomes a `Call` parked on a future; the scheduler picks which parked call goes on,
and how: carried out, refused with a 429 or a 503 before it reaches Heroku, or carried out
with its answer lost (a 503 after the fact). So every interleaving between a promotion's
claim, its re-read and its POST is reachable, and a seed replays exactly.
"""

import asyncio
import json
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.simulation.world import SimSandbox

OPERATION: ContextVar[Any] = ContextVar("simulation_operation", default=None)


@dataclass
class Call:
    """One parked Platform API request and the operation (engine task) that made it."""

    request: httpx.Request
    op: Any
    step: int
    number: int
    answered: int | None = None  # the step at which the scheduler let it go on
    answer: "asyncio.Future[str]" = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def describe(self) -> str:
        path = self.request.url.path
        short = "/".join(p[:8] for p in path.split("/"))
        return f"call#{self.number} {self.request.method} {short}"

    @property
    def is_promotion(self) -> bool:
        return self.request.method == "POST" and self.request.url.path == "/pipeline-promotions"

    @property
    def is_reread(self) -> bool:
        return self.request.url.path.endswith("/latest-releases")


class ParkingTransport(httpx.AsyncBaseTransport):
    """httpx transport into the sandbox's app that parks every request for the scheduler."""

    def __init__(self, sandbox: SimSandbox, on_park: Callable[[Call], None]) -> None:
        self.sandbox = sandbox
        self.inner = httpx.ASGITransport(app=sandbox.app)
        self.on_park = on_park
        self.numbered = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.numbered += 1
        op = OPERATION.get()
        call = Call(request, op, self.sandbox.step, self.numbered)
        if op is not None:
            op.issued.append((self.sandbox.step, call))
        self.on_park(call)
        how = await call.answer
        if how in ("429", "503"):
            body = {"id": "rate_limit" if how == "429" else "unavailable", "message": "simulated"}
            return httpx.Response(int(how), json=body, request=request)
        self.sandbox.operation = lambda: op
        try:
            response = await self.inner.handle_async_request(request)
            await response.aread()
        finally:
            self.sandbox.operation = lambda: None
        self._reveal(request, response)
        if how == "503-after":  # it happened; the caller hears an error anyway
            body = {"id": "unavailable", "message": "simulated, after the fact"}
            return httpx.Response(503, json=body, request=request)
        return response

    def _reveal(self, request: httpx.Request, response: httpx.Response) -> None:
        """Releases an answered read showed Cascade (succeeded ones count as known)."""
        path = request.url.path
        if request.method != "GET" or response.status_code >= 300:
            return
        if path.endswith("/latest-releases") or (
            path.startswith("/apps/") and path.endswith("/releases")
        ):
            ids = {r["id"] for r in json.loads(response.content) if isinstance(r, dict)}
            found = [r for app in self.sandbox.apps for r in app.releases if r.id in ids]
            self.sandbox.reveal(found)
