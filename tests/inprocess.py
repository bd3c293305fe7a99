"""Cascade in-process for tests and benchmarks: its lifespan run by asgi-lifespan, the sandbox
as its Heroku.

The app is the real one (`create_app`), on the session's real Redis; requests go through
httpx's ASGI transport. The benchmarks (`bench/procs.py`) start it here too, through
`settled`, with a services file of their own and no pytest.
"""

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from starlette.types import ASGIApp

from app.config.settings import Settings
from app.main import create_app
from app.runtime import Runtime

ADMIN_TOKEN = "t"
WEBHOOK_SECRET = "s"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
API_STAGES = ("api-qa", "api-st", "api-prod")
WEB_STAGES = ("web-dev", "web-prod")
SERVICES = """
[defaults]
min_age = "{min_age}"

[[service]]
name = "api"
pipeline = "api"
stages = ["api-qa", "api-st", "api-prod"]

[[service]]
name = "web"
pipeline = "web"
stages = ["web-dev", "web-prod"]
"""
ENV_PREFIXES = ("CASCADE_", "HEROKU_", "GITHUB_", "LIBRATO_")
ENV_NAMES = ("REDIS_URL", "STATUS_API_URL", "PORT")
# A bound, not an expectation: a reconcile against an unreachable Platform API retries
# for several seconds before it gives up.
SETTLE_TIMEOUT = 30.0
Json = dict[str, Any]
T = TypeVar("T")


@dataclass
class Cascade:
    """A started Cascade: its ASGI client, its runtime and its settings."""

    client: httpx.AsyncClient
    runtime: Runtime
    app: FastAPI
    settings: Settings

    async def json(self, path: str, **params: Any) -> Any:
        response = await self.client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def status(self) -> Json:
        status: Json = await self.json("/status")
        return status

    async def events(self, **params: Any) -> list[Json]:
        events: list[Json] = (await self.json("/events", **params))["events"]
        return events

    async def stage_commit(self, service: str, app: str) -> str | None:
        status = await self.json(f"/status/{service}")
        commit: str | None = next(s["commit"] for s in status["stages"] if s["app"] == app)
        return commit

    async def settle(self) -> None:
        """Wait until no reconcile is queued or running."""
        await asyncio.wait_for(self.runtime.queue.join(), timeout=SETTLE_TIMEOUT)


class Start(Protocol):
    def __call__(self, *, min_age: str = "1h", **settings: Any) -> Awaitable[Cascade]: ...


async def eventually(
    check: Callable[[], Awaitable[T | None]], what: str, timeout: float = 10.0
) -> T:
    """Poll `check` every 20 ms until it returns something truthy; fail after `timeout`."""
    for _ in range(int(timeout / 0.02)):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def record_enqueues(
    cascade: Cascade, monkeypatch: pytest.MonkeyPatch, seen: list[str] | None = None
) -> list[str]:
    """The services the webhooks enqueue from now on, in `seen` (they are still enqueued): the
    routes are handed an intake whose `enqueue` is spied on."""
    found: list[str] = [] if seen is None else seen
    intake = cascade.app.state.intake

    def spy(service: str) -> None:
        found.append(service)
        intake.enqueue(service)

    monkeypatch.setattr(cascade.app.state, "intake", replace(intake, enqueue=spy))
    return found


def clean_environment(monkeypatch: pytest.MonkeyPatch | None = None) -> None:
    """No setting of the real environment may leak into the app under test: until the test
    ends (`monkeypatch`), or for the rest of this process (None: a benchmark run)."""
    for name in list(os.environ):
        if name.upper() == "CASCADE_FIGURES":  # where the reliability tests report, not a setting
            continue
        if not (name.upper().startswith(ENV_PREFIXES) or name.upper() in ENV_NAMES):
            continue
        if monkeypatch is None:
            del os.environ[name]
        else:
            monkeypatch.delenv(name)


def make_settings(
    redis_url: str,
    tmp_path: Path,
    min_age: str = "1h",
    *,
    config: Path | None = None,
    **overrides: Any,
) -> Settings:
    """Settings for one in-process Cascade, none of them read from the environment; its
    services file is `config`, else one written here (`SERVICES` with this `min_age`)."""
    if config is None:
        config = tmp_path / f"cascade-{len(list(tmp_path.glob('cascade-*.toml')))}.toml"
        config.write_text(SERVICES.format(min_age=min_age))
    values: Json = {
        "redis_url": redis_url,
        "config_path": config,
        "admin_token": ADMIN_TOKEN,
        "heroku_webhook_secret": WEBHOOK_SECRET,
        "tick_seconds": 3600,
        "resync_seconds": 3600,
        "sandbox_deploy_seconds": 0,
        "data_dir": tmp_path / "data",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@asynccontextmanager
async def cascades(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Start]:
    """Start Cascade in-process (as many as asked, each on `redis_url`); all stop on exit."""
    clean_environment(monkeypatch)
    async with AsyncExitStack() as stack:

        async def start(*, min_age: str = "1h", **overrides: Any) -> Cascade:
            settings = make_settings(redis_url, tmp_path, min_age, **overrides)
            app, served = await stack.enter_async_context(running(settings))
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=served), base_url="http://cascade"
                )
            )
            runtime: Runtime = app.state.runtime
            cascade = Cascade(client, runtime, app, settings)
            if runtime.sandbox is not None:
                # The startup reconcile reads each pipeline; let it finish first.
                await cascade.settle()
                await eventually(lambda: _all_stages_known(cascade), "every stage to be read")
            return cascade

        yield start


@asynccontextmanager
async def running(
    settings: Settings, *, startup_timeout: float = 30.0, shutdown_timeout: float = 30.0
) -> AsyncIterator[tuple[FastAPI, ASGIApp]]:
    """The real app with its lifespan run: the app, and the ASGI app that serves requests.

    Heroku allows 30 s to start and to stop; a loaded machine may need them.
    """
    app = create_app(settings)
    lifespan = LifespanManager(
        app, startup_timeout=startup_timeout, shutdown_timeout=shutdown_timeout
    )
    async with lifespan as manager:
        yield app, manager.app


@asynccontextmanager
async def settled(
    settings: Settings, *, startup_timeout: float = 30.0, shutdown_timeout: float = 30.0
) -> AsyncIterator[Runtime]:
    """Cascade started, and its start-up reconciles done: its runtime, for code that drives
    it directly (the benchmarks count its calls and time its ticks)."""
    async with running(
        settings, startup_timeout=startup_timeout, shutdown_timeout=shutdown_timeout
    ) as (app, _served):
        runtime: Runtime = app.state.runtime
        await runtime.queue.join()
        yield runtime


async def _all_stages_known(cascade: Cascade) -> bool:
    status = await cascade.status()
    return all(stage["commit"] for s in status["services"] for stage in s["stages"])


async def observed(cascade: Cascade) -> tuple[Json, list[Json]]:
    """What a refused request must not change: /status and /events."""
    await cascade.settle()
    return await cascade.status(), await cascade.events(limit=1000)


def in_future(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()
