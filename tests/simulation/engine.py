"""One Cascade process of the simulation, built by the composition root's own parts
(`app.runtime.parts`) on the virtual clock.

An `Engine` is what `app.runtime.open` builds, minus what runs by itself in the background
(APScheduler, the poller, the file watcher, the notices): the scheduler is the only thing that
moves time or work. Its Redis is the session's real Valkey; its Platform API is the sandbox
behind `ParkingTransport`; its webhook intake and operator routes are the real app's routes
(`create_app`), served with this engine's pieces. A killed engine is replaced by a fresh one
(empty process caches, a new owner name), as a restarted dyno is.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache, partial
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as redis
from fastapi import FastAPI
from pydantic import SecretStr

from app.config.catalog import Catalog
from app.config.services import Service, ServicesConfig
from app.config.settings import Settings
from app.heroku.client import HerokuClient
from app.main import create_app
from app.metrics import Metrics
from app.runtime.parts import engine, intake, routes, serve, work
from app.signals.alerts.view import AlertsView
from app.signals.github.client import GitHubClient
from app.signals.github.view import GitHubView
from app.signals.incidents.view import IncidentsView
from app.signals.urls.client import UrlProber
from app.signals.views import Views
from app.storage.client import connect
from app.storage.dora_record import DoraRecord
from app.storage.epoch import Epoch
from app.storage.store import Store
from tests.simulation.platform import Call, ParkingTransport
from tests.simulation.world import WEBHOOK_SECRET, SimSandbox, VirtualClock

ADMIN_TOKEN = "simulation-admin"
RESYNC_SECONDS = 300.0


@dataclass
class Wakeups:
    """The engine's timers (`Scheduler.wake`, the tick): kept for the scheduler to fire."""

    at: dict[str, datetime] = field(default_factory=dict)
    enqueue: Callable[[str], None] = lambda service: None

    def tick(self) -> None:
        """Every service, now (`Scheduler.tick`): the queue is asked for it."""
        self.enqueue("sim")

    def wake(self, service: str, at: datetime) -> None:
        self.at[service] = at

    def wake_at(self, service: str) -> datetime | None:
        return self.at.get(service)


@dataclass
class Queue:
    """The engine's reconcile queue as the webhooks and routes see it: what they asked for."""

    wanted: set[str] = field(default_factory=set)

    def enqueue(self, service: str) -> None:
        self.wanted.add(service)


@cache
def settings() -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        redis_url=SecretStr("redis://unused"),
        admin_token=SecretStr(ADMIN_TOKEN),
        heroku_webhook_secret=SecretStr(WEBHOOK_SECRET),
        resync_seconds=RESYNC_SECONDS,
        config_path=Path("simulation.toml"),
    )


@cache
def shared_app() -> FastAPI:
    """The real routes, built once: each request is served with the engine it is sent to."""
    return create_app(settings())


@cache
def shared_metrics() -> Metrics:
    return Metrics("simulation", "sandbox")


@cache
def _outside() -> tuple[GitHubClient, UrlProber]:
    """The signals' HTTP clients, made once: no signal is configured, none is ever called."""
    s = settings()
    return GitHubClient(s.github_api_url, None), UrlProber.from_settings(s)


def _health(client: "redis.Redis") -> Views:
    """`Views.from_settings`, on this engine's Redis, with the shared HTTP clients."""
    github, urls = _outside()
    s = settings()
    return Views(
        github=GitHubView(client, github, s.signal_retry_seconds, s.poll_seconds),
        alerts=AlertsView.from_settings(s, client),
        incidents=IncidentsView.from_settings(s, client),
        urls=urls,
    )


ALERT = "SimAlert"  # the service's alert: it holds promotions, and halts after one
HALT_WINDOW = timedelta(minutes=10)


def services(
    stages: tuple[str, ...],
    min_age: timedelta,
    waves: tuple[tuple[str, ...], ...] = (),
    rollback: bool = False,
) -> ServicesConfig:
    service = Service(
        name="sim",
        pipeline="sim",
        stages=stages,
        min_age=min_age,
        waves=waves,
        alerts=(ALERT,),
        halt_window=HALT_WINDOW,
        rollback=rollback,
    )
    return ServicesConfig(path=Path("simulation.toml"), services=(service,))


class ReplicatedEpoch(Epoch):
    """The epoch of a process whose Redis has one replica: the scheduler's lagging copy
    (`Simulation._take_snapshot`), which a failover promotes (`redis_rewind`).

    The real server has no replica, so `Epoch.durable` sends no WAIT; this one models a
    healthy replica's answer to it: the copy has everything written so far. A guarding
    write Cascade did not wait for (a claim, a pause) is lost in that failover.
    """

    def __init__(self, *args: Any, replicate: Callable[[], Awaitable[None]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.replicate = replicate

    async def durable(self, service: str | None = None) -> bool:
        kept = await super().durable(service)
        await self.replicate()
        return kept


class Engine:
    """A Cascade process: its Redis connections, Platform API client, engine and routes' pieces."""

    def __init__(
        self,
        name: str,
        redis_url: str,
        sandbox: SimSandbox,
        clock: VirtualClock,
        config: ServicesConfig,
        on_park: Callable[[Call], None],
        replicate: Callable[[], Awaitable[None]],
    ) -> None:
        self.name = name
        self.client = connect(redis_url)
        store = Store(self.client)
        self.transport = ParkingTransport(sandbox, on_park)
        self.heroku = HerokuClient(
            "http://sandbox.invalid",
            "simulation",
            commits=store,
            transport=self.transport,
            sleep=_no_wait,
            clock=lambda: clock().timestamp(),
            max_retries=1,
        )
        views = _health(self.client)
        # Told of a data loss by the marker (`app.storage.epoch`), looked at by each reconcile; its
        # background watch is not started: only the scheduler moves work.
        self.epoch = ReplicatedEpoch(self.client, clock, replicate=replicate)
        catalog, metrics = Catalog(config), shared_metrics()
        self.built = engine(
            self.client,
            store,
            self.heroku,
            catalog,
            views,
            clock,
            name,
            resync_seconds=RESYNC_SECONDS,
            epoch=self.epoch,
            durable=self.epoch.durable,
        )
        self.store, self.audit = store, self.built.audit
        self.queue = Queue()
        self.wakeups = Wakeups(enqueue=self.queue.enqueue)
        reconciler, enqueue = self.built.reconciler, self.queue.enqueue
        self.handle = partial(work, reconciler, metrics, self.wakeups.wake, enqueue)
        secret = SecretStr(WEBHOOK_SECRET)
        self.intake = intake(settings(), catalog, self.built, views, metrics, enqueue, secret)
        self.pieces = routes(
            settings(),
            catalog,
            self.built,
            views,
            self.epoch,
            metrics,
            DoraRecord(self.client),
            enqueue,
            self.wakeups.tick,
            self.intake,
        )

    async def start(self) -> "Engine":
        """What `runtime.open` does before serving: adopt or write the data marker."""
        await self.epoch.start(forget=self.built.reconciler.forget_all)
        return self

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request to this process's routes (webhook intake, pause, retry)."""
        app = shared_app()
        serve(app.state, self.pieces)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cascade") as client:
            headers = kwargs.pop("headers", {})
            if not path.startswith("/webhooks"):
                headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
            return await client.request(method, path, headers=headers, **kwargs)

    def busy(self) -> bool:
        """Whether a Redis command of this process is on the wire."""
        pool = self.client.connection_pool
        return bool(getattr(pool, "_in_use_connections", ()))

    async def close(self) -> None:
        await self.heroku.aclose()  # the views' HTTP clients are shared: kept
        await self.client.aclose()


async def _no_wait(_: float) -> None:
    """The client's backoff and pacing: virtual, so they cost no real time."""
    await asyncio.sleep(0)
