"""A Reconciler against the sandbox platform (in-process) and a real Redis, its clock injected:
the `make_world` fixture (registered in `tests/conftest.py`). Built by the composition root's
own `engine` (`app.runtime.parts`), as every Cascade process is."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis

from app.config.catalog import Catalog
from app.config.services import Freeze, Service, ServicesConfig
from app.config.settings import Settings
from app.core.models import Snapshot
from app.engine.reconcile import Reconciler
from app.heroku.client import HerokuClient
from app.runtime.parts import engine
from app.sandbox import Sandbox, pipelines_from_services
from app.signals.views import Views
from app.storage.store import Store

STAGES = ("api-qa", "api-st", "api-prod")


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    sandbox: Sandbox
    heroku: HerokuClient
    reconciler: Reconciler
    clock: Clock

    async def settle(self) -> None:
        """Let the sandbox finish every release and every promotion's slug copy in progress."""
        for _ in range(200):
            pending = [a for a in self.sandbox.world.apps if a.releases[-1].status == "pending"]
            copying = [p for p in self.sandbox.world.promotions if p.status == "pending"]
            if not pending and not copying:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("sandbox releases never finished")

    async def observe(self, service: Service) -> Snapshot:
        """The service as its status page shows it (`Snapshots.observe`)."""
        return await self.reconciler.snapshots.observe(service, self.reconciler.config.freezes)

    def running(self, app: str) -> str:
        current = self.sandbox.world.app(app).current
        assert current is not None
        return current.slug.commit


async def build_world(
    redis_client: "redis.Redis",
    config: ServicesConfig,
    *,
    modelled: ServicesConfig | None = None,
    resync_seconds: float = 3600,
    durable: Callable[[str], Awaitable[bool]] | None = None,
    release_seconds: float = 0.01,
    fir: tuple[str, ...] = (),
    container: tuple[str, ...] = (),
) -> World:
    """A Reconciler for `config` on a started sandbox of `modelled`'s pipelines (`config`'s by
    default), those named in `fir` Fir ones, the apps in `container` on the container stack;
    close it with `close_world`."""
    sandbox = Sandbox(
        pipelines_from_services(modelled or config, fir=fir, container=container),
        webhook_url=None,
        webhook_secret="unused",
        release_seconds=release_seconds,
    )
    await sandbox.start()
    store = Store(redis_client)
    heroku = HerokuClient(
        "http://sandbox",
        "token",
        commits=store,
        transport=httpx.ASGITransport(app=sandbox.app),
    )
    clock = Clock()
    views = Views.from_settings(Settings(_env_file=None), redis_client)
    built = engine(
        redis_client,
        store,
        heroku,
        Catalog(config),
        views,
        clock,
        "test",
        resync_seconds=resync_seconds,
        durable=durable,
    )
    return World(sandbox, heroku, built.reconciler, clock)


async def close_world(world: World) -> None:
    await world.heroku.aclose()
    await world.sandbox.stop()


@pytest.fixture
async def make_world(
    redis_client: "redis.Redis",
) -> AsyncIterator[Callable[..., "asyncio.Future[World]"]]:
    made: list[World] = []

    async def make(
        stages: tuple[str, ...] = STAGES,
        resync_seconds: float = 3600,
        freezes: tuple[Freeze, ...] = (),
        durable: Callable[[str], Awaitable[bool]] | None = None,
        config: ServicesConfig | None = None,
        fir: bool = False,
        container: tuple[str, ...] = (),
    ) -> World:
        """`config`, when given, is both Cascade's services file and the sandbox's pipelines."""
        modelled = None
        if config is None:
            service = Service("api", "api", stages, min_age=timedelta(minutes=30))
            config = ServicesConfig(path=Path("test.toml"), services=(service,), freezes=freezes)
            modelled = ServicesConfig(config.path, services=(Service("api", "api", STAGES),))
        world = await build_world(
            redis_client,
            config,
            modelled=modelled,
            resync_seconds=resync_seconds,
            durable=durable,
            fir=("api",) if fir else (),
            container=container,
        )
        made.append(world)
        return world

    yield make  # type: ignore[misc]
    for world in made:
        await close_world(world)
