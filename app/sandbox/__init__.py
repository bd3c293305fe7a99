"""Sandbox platform: a simulated Heroku that Cascade runs against when no HEROKU_API_KEY is set.

Cascade talks to it as to api.heroku.com, and the end-to-end tests use it as Cascade's
Platform API peer. `Sandbox` owns the in-memory world (`app.sandbox.world`) and the time
in it: a promotion's slug copy lands after `copy_seconds` (no release on its target until
then), releases finish after `release_seconds`, and each release change goes to Cascade
as a signed `api:release` webhook (`app.sandbox.hooks`). Its HTTP surface, the Platform
API plus the `/_sandbox` controls, is `app.sandbox.api`. Standalone: `python -m app.sandbox`
(`app.sandbox.standalone`).
"""

import asyncio
import logging
from collections import deque
from collections.abc import Collection, Coroutine, Sequence
from datetime import datetime
from typing import Any

import httpx
from starlette.types import ASGIApp

from app.clock import utcnow
from app.config.services import ServicesConfig
from app.sandbox.api import build_app
from app.sandbox.bodies import promotion_json, release_hook_data, release_json
from app.sandbox.faults import Faults, RatePool
from app.sandbox.hooks import WebhookSender
from app.sandbox.resources import (
    COUPLING_STAGES,
    App,
    AppWebhook,
    Json,
    PromotionTarget,
    Release,
    SandboxPipeline,
    new_commit,
)
from app.sandbox.world import World
from app.tasks import cancel

__all__ = ["Sandbox", "SandboxPipeline", "in_process", "pipelines_from_services"]

log = logging.getLogger("cascade.sandbox")

IN_PROCESS_WEBHOOK_URL = "http://cascade.internal/webhooks/heroku"


def pipelines_from_services(
    config: ServicesConfig, fir: Collection[str] = (), container: Collection[str] = ()
) -> tuple[SandboxPipeline, ...]:
    """A pipeline per configured one: first app development, second staging, rest production.

    `fir` names the pipelines of the Fir generation, `container` the apps on the container
    stack (`--fir`, `--container`).
    """
    pipelines: dict[str, SandboxPipeline] = {}
    for service in config.services:
        names = service.stages or tuple(f"{service.name}-{stage}" for stage in COUPLING_STAGES)
        apps = tuple((name, COUPLING_STAGES[min(i, 2)]) for i, name in enumerate(names))
        docker = frozenset(name for name in names if name in container)
        made = SandboxPipeline(service.pipeline, apps, service.pipeline in fir, docker)
        pipelines.setdefault(service.pipeline, made)
    return tuple(pipelines.values())


class Sandbox:
    """The simulated Heroku: Platform API + `/_sandbox` on `app`, webhooks to `webhook_url`."""

    def __init__(
        self,
        pipelines: Sequence[SandboxPipeline],
        *,
        webhook_url: str | None,
        webhook_secret: str,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
        release_seconds: float = 1.0,
        copy_seconds: float | None = None,
        deploy_every: float | None = None,
        webhook_retry_delays: Sequence[float] = (1.0, 4.0, 15.0),
    ) -> None:
        self.world = World(pipelines, self._now())
        if webhook_url is not None:  # every app starts subscribed, as after `webhooks:add`
            for app in self.world.apps:
                self._subscribe(app, webhook_url, webhook_secret)
        self.webhooks = WebhookSender(
            webhook_url,
            webhook_secret,
            transport=webhook_transport,
            retry_delays=webhook_retry_delays,
        )
        self._release_seconds, self._deploy_every = release_seconds, deploy_every
        # How long a promotion copies the slug before its target's release appears (None:
        # as long as a release phase). No release shows on the target meanwhile.
        self.copy_seconds = copy_seconds
        self.faults, self.rate = Faults(), RatePool()
        self.requests: deque[Json] = deque(maxlen=10_000)  # Platform API calls, for tests
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()  # cleared while the hold_releases fault holds them
        self._flowing.set()
        self._started = False
        self.app = build_app(self)

    async def start(self) -> None:
        """Start webhook delivery and, with `deploy_every`, the demo deployer; idempotent."""
        if self._started:
            return
        self._started = True
        self._spawn(self.webhooks.run())
        if self._deploy_every:
            self._spawn(self._deploy_forever(self._deploy_every))
        log.info("sandbox: SIMULATED Heroku started with %d apps", len(self.world.apps))

    async def stop(self) -> None:
        """Cancel every background task: delivery, demo deploys, unfinished releases."""
        await cancel(list(self._tasks))
        self._started = False
        log.info("sandbox: simulated Heroku stopped")

    async def deploy(self, app: str, commit: str | None = None, *, succeed: bool = True) -> Json:
        """Release a new build on `app`: pending now, finished after `release_seconds`.

        Returns the release as a webhook carries it (Platform API fields + `slug.commit`);
        an unknown app raises `PlatformError` (404).
        """
        release = self.world.deploy(self.world.app(app), commit or new_commit(), self._now())
        self._release_started(release, succeed=succeed)
        log.info("sandbox: deploy %s v%d %s", app, release.version, release.slug.commit[:8])
        return release_hook_data(release)

    async def rollback(self, app: str, version: int) -> Json:
        """Roll `app` back to its release `version` (a new release of that slug), as `deploy`."""
        release = self.world.rollback(self.world.app(app), version, self._now())
        self._release_started(release, succeed=True)
        log.info("sandbox: rollback %s v%d to v%d", app, release.version, version)
        return release_hook_data(release)

    def roll_back(self, app: str, body: object) -> Json:
        """`POST /apps/{app}/releases`: the release Rollback, pending now, as `rollback`."""
        release = self.world.rollback_to(self.world.app(app), body, self._now())
        self._release_started(release, succeed=True)
        log.info("sandbox: rollback %s v%d to %s", app, release.version, body)
        return release_json(release)

    def promote(self, body: object) -> Json:
        """`POST /pipeline-promotions`: start it (or raise `PlatformError`), answer its JSON."""
        fail = self.faults.fail_promotions > 0
        promotion = self.world.promote(body, self._now())  # refused: no fault used up
        self.faults.fail_promotions -= fail
        for target in promotion.targets:
            failing = target.app.name in self.faults.fail_targets  # one target of several
            if failing:
                self.faults.fail_targets.remove(target.app.name)
            self._spawn(self._copy_later(target, succeed=not (fail or failing)))
        source = promotion.source
        log.info(
            "sandbox: promotion %s of %s v%d %s to %s%s",
            promotion.id,
            source.app.name,
            source.version,
            source.slug.commit[:8],
            ", ".join(t.app.name for t in promotion.targets),
            " (fault: its targets will fail)" if fail else "",
        )
        return promotion_json(promotion)

    def grow(self, config: ServicesConfig) -> None:
        """Pipelines a reloaded services file names that the world lacks: made as at start."""
        known = {p.name for p in self.world.pipelines} | {p.id for p in self.world.pipelines}
        fresh = [p for p in pipelines_from_services(config) if p.name not in known]
        if not fresh:
            return
        added = World(fresh, self._now())
        taken = {app.name for app in self.world.apps}
        for pipeline in added.pipelines:
            if any(app.name in taken for app in pipeline.apps):
                log.warning("sandbox: pipeline %s reuses an existing app: skipped", pipeline.name)
                continue
            self.world.pipelines.append(pipeline)
            for app in pipeline.apps:
                if self.webhooks.url is not None:
                    self._subscribe(app, self.webhooks.url, self.webhooks.secret)
            log.info("sandbox: pipeline %s added with %d apps", pipeline.name, len(pipeline.apps))

    def _subscribe(self, app: App, url: str, secret: str) -> None:
        now = self._now()
        hook = AppWebhook(app, url, ["api:release"], "sync", secret, now, now, id=app.webhook_id)
        app.webhooks.append(hook)

    def hold_releases(self, hold: bool) -> None:
        """While held, releases stay pending (a long release phase); letting go ends them."""
        self.faults.hold_releases = hold
        if hold:
            self._flowing.clear()
        else:
            self._flowing.set()

    def _release_started(self, release: Release, *, succeed: bool) -> None:
        self.webhooks.announce("create", release, self._now())
        self._spawn(self._finish_later(release, succeed=succeed))

    async def _copy_later(self, target: PromotionTarget, *, succeed: bool) -> None:
        """The slug copy of a promotion: its target's release appears only once it is done."""
        copy = self._release_seconds if self.copy_seconds is None else self.copy_seconds
        await asyncio.sleep(copy)
        self._release_started(self.world.land(target, self._now()), succeed=succeed)

    async def _finish_later(self, release: Release, *, succeed: bool) -> None:
        await asyncio.sleep(self._release_seconds)
        await self._flowing.wait()
        self.world.finish(release, succeeded=succeed, now=self._now())
        self.webhooks.announce("update", release, self._now())
        log.info("sandbox: %s v%d %s", release.app.name, release.version, release.status)

    async def _deploy_forever(self, every: float) -> None:
        """Demo mode: a new commit on each pipeline's first app, so something happens."""
        while True:
            await asyncio.sleep(every)
            for pipeline in self.world.pipelines:
                if pipeline.apps:
                    await self.deploy(pipeline.apps[0].name)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._reap)

    def _reap(self, task: "asyncio.Task[None]") -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("sandbox: background task failed", exc_info=exc)

    @staticmethod
    def _now() -> datetime:
        return utcnow()


def in_process(
    config: ServicesConfig,
    *,
    cascade: ASGIApp,
    webhook_secret: str,
    deploy_every: float | None = None,
    release_seconds: float = 1.0,
) -> tuple[Sandbox, httpx.AsyncBaseTransport]:
    """Cascade with no token: the sandbox inside Cascade's process, both ways over ASGI.

    Webhooks reach `cascade`'s `/webhooks/heroku`; the returned transport carries
    Cascade's Platform API calls to the sandbox. The caller starts and stops the sandbox.
    """
    sandbox = Sandbox(
        pipelines_from_services(config),
        webhook_url=IN_PROCESS_WEBHOOK_URL,
        webhook_secret=webhook_secret,
        webhook_transport=httpx.ASGITransport(app=cascade),
        release_seconds=release_seconds,
        deploy_every=deploy_every,
    )
    return sandbox, httpx.ASGITransport(app=sandbox.app)
