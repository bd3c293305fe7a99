"""The benchmarks' Platform API peer: the sandbox (`app.sandbox`) with a stopwatch.

`python -m bench.peer` serves the simulated Heroku for a services file, like
`python -m app.sandbox`, and adds what the benchmarks read at `/_bench`:

- when each `POST /pipeline-promotions` arrived (CLOCK_MONOTONIC, which every process on
  the machine shares, and wall time), and from which source app;
- when Cascade answered each `api:release` webhook the sandbox sent it;
- every Platform API call, counted by endpoint (`app.sandbox` keeps only the last 10,000).

`--unlimited` gives the account an endless rate pool, for fleets whose cold start alone
would drain Heroku's 4,500 calls (the economy benchmark keeps the real pool).
"""

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config.services import load_services
from app.sandbox import Sandbox, pipelines_from_services
from app.sandbox.faults import RatePool

Json = dict[str, Any]


class Stopwatch:
    """What the peer saw, in the order it saw it."""

    def __init__(self) -> None:
        self.promotions: list[Json] = []
        self.answers: list[Json] = []
        self.calls: Counter[str] = Counter()

    def reset(self) -> None:
        self.promotions.clear()
        self.answers.clear()
        self.calls.clear()

    def json(self) -> Json:
        return {
            "promotions": self.promotions,
            "answers": self.answers,
            "calls": dict(self.calls),
            "total": sum(self.calls.values()),
        }


class TimedTransport(httpx.AsyncBaseTransport):
    """The webhook sender's transport: notes when Cascade's answer to each delivery arrived."""

    def __init__(self, watch: Stopwatch) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.watch = watch

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        answered = time.monotonic()
        event = json.loads(request.content)
        data = event.get("data", {})
        self.watch.answers.append(
            {
                "at": answered,
                "app": data.get("app", {}).get("name"),
                "version": data.get("version"),
                "status": data.get("status"),
                "commit": (data.get("slug") or {}).get("commit"),
                "code": response.status_code,
            }
        )
        return httpx.Response(
            response.status_code, headers=response.headers, content=body, request=request
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class Timing:
    """ASGI wrapper around the sandbox: stamps arrivals, counts calls, serves `/_bench`."""

    def __init__(self, sandbox: Sandbox, watch: Stopwatch) -> None:
        self.sandbox, self.inner, self.watch = sandbox, sandbox.app, watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        arrived, wall = time.monotonic(), time.time()
        path, method = scope["path"], scope["method"]
        if path.startswith("/_bench"):
            await self._control(path, method, send)
            return
        if not path.startswith("/_sandbox"):
            self.watch.calls[f"{method} {_template(path)}"] += 1
        if method == "POST" and path == "/pipeline-promotions":
            receive = self._noting(receive, arrived, wall)
        await self.inner(scope, receive, send)

    def _noting(self, receive: Receive, arrived: float, wall: float) -> Receive:
        chunks: list[bytes] = []

        async def wrapped() -> Message:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                self._promotion(b"".join(chunks), arrived, wall)
            return message

        return wrapped

    def _promotion(self, body: bytes, arrived: float, wall: float) -> None:
        try:
            source_id = json.loads(body)["source"]["app"]["id"]
            source = self.sandbox.world.app(source_id, by_name=False).name
        except (ValueError, KeyError, TypeError, LookupError, Exception):
            source = None
        self.watch.promotions.append({"at": arrived, "wall": wall, "source": source})

    async def _control(self, path: str, method: str, send: Send) -> None:
        if method == "DELETE":
            self.watch.reset()
            body: Json = {}
        elif path == "/_bench/calls":
            body = {"calls": dict(self.watch.calls), "total": sum(self.watch.calls.values())}
        elif path == "/_bench/slugs":  # what a warm Cascade's slug cache holds already
            releases = (app.releases[-1] for app in self.sandbox.world.apps)
            body = {r.slug.id: r.slug.commit for r in releases}
        else:
            body = self.watch.json()
        raw = json.dumps(body).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": raw})


def _template(path: str) -> str:
    """`/apps/x/releases` → `/apps/{}/releases`: ids and names folded, for counting."""
    parts = path.strip("/").split("/")
    return "/" + "/".join(p if i % 2 == 0 else "{}" for i, p in enumerate(parts))


def build(
    config: Path,
    *,
    webhook_url: str | None,
    secret: str,
    release_seconds: float,
    unlimited: bool,
) -> tuple[Sandbox, ASGIApp]:
    watch = Stopwatch()
    sandbox = Sandbox(
        pipelines_from_services(load_services(config)),
        webhook_url=webhook_url,
        webhook_secret=secret,
        webhook_transport=TimedTransport(watch),
        release_seconds=release_seconds,
        webhook_retry_delays=(0.2, 0.5),
    )
    if unlimited:
        sandbox.rate = RatePool(size=1e12, tokens=1e12)
    _index(sandbox)
    return sandbox, Timing(sandbox, watch)


def _index(sandbox: Sandbox) -> None:
    """Look pipelines and apps up by id or name in a dict, not a scan: with 10,000 services
    the simulated Heroku would otherwise be the slowest thing measured."""
    world = sandbox.world
    scan_pipeline, scan_app = world.pipeline, world.app
    pipelines = {p.id: p for p in world.pipelines}
    pipeline_names = {p.name: p for p in world.pipelines}
    apps = {a.id: a for a in world.apps}
    app_names = {a.name: a for a in world.apps}

    def pipeline(ident: str, *, by_name: bool = True) -> Any:
        found = pipelines.get(ident) or (pipeline_names.get(ident) if by_name else None)
        return found or scan_pipeline(ident, by_name=by_name)

    def app(ident: str, *, by_name: bool = True) -> Any:
        found = apps.get(ident) or (app_names.get(ident) if by_name else None)
        return found or scan_app(ident, by_name=by_name)

    world.pipeline = pipeline  # type: ignore[method-assign]
    world.app = app  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--secret", required=True, help="signs the api:release webhooks")
    parser.add_argument("--webhook-url", help="Cascade's /webhooks/heroku (none: no webhooks)")
    parser.add_argument("--release-seconds", type=float, default=0.02)
    parser.add_argument("--unlimited", action="store_true", help="an endless rate pool")
    args = parser.parse_args()
    _, app = build(
        args.config,
        webhook_url=args.webhook_url,
        secret=args.secret,
        release_seconds=args.release_seconds,
        unlimited=args.unlimited,
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
