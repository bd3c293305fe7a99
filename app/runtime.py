"""Everything a running Cascade holds, built and torn down in one place (the app's lifespan).

Redis (given or embedded), the Platform API client (real, or the in-process
sandbox), the reconciler, its queue and the scheduler.
"""

import asyncio
import logging
import os
import secrets
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis.asyncio as redis
from fastapi import FastAPI
from pydantic import SecretStr

from app import sandbox as sandboxes
from app.audit import Audit
from app.heroku import HerokuClient
from app.ledger import Ledger
from app.locks import Locks
from app.promoter import Promoter
from app.queue import ReconcileQueue
from app.reconciler import Reconciler
from app.redis_client import connect
from app.redis_server import EmbeddedRedis
from app.scheduler import Scheduler
from app.services import ServicesConfig, load_services
from app.settings import Settings
from app.store import Store

log = logging.getLogger("cascade")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    config: ServicesConfig
    redis: "redis.Redis"
    store: Store
    audit: Audit
    ledger: Ledger
    heroku: HerokuClient
    reconciler: Reconciler
    queue: ReconcileQueue
    scheduler: Scheduler
    heroku_secret: SecretStr | None
    sandbox: sandboxes.Sandbox | None = None
    embedded: EmbeddedRedis | None = None
    started_at: datetime = field(default_factory=utcnow)

    async def handle(self, service: str) -> None:
        """The queue's worker step: reconcile, then arrange to look again."""
        outcome = await self.reconciler.reconcile(service)
        if outcome.wake_at is not None:
            self.scheduler.wake(service, outcome.wake_at)
        if outcome.again:
            self.queue.enqueue(service)


async def start(settings: Settings, app: FastAPI) -> Runtime:
    config = load_services(settings.config_path)
    embedded = None
    if settings.redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir / "redis")
        await asyncio.to_thread(embedded.start)
        url = embedded.url
    else:
        url = settings.redis_url.get_secret_value()
    client = connect(url)
    store = Store(client)
    secret, sandbox, heroku = _platform(settings, config, app, store)
    audit, ledger = Audit(client), Ledger(client)
    owner = f"{socket.gethostname()}:{os.getpid()}"
    promoter = Promoter(heroku, store, ledger, audit, utcnow, owner)
    reconciler = Reconciler(
        config=config,
        heroku=heroku,
        store=store,
        ledger=ledger,
        locks=Locks(client),
        audit=audit,
        promoter=promoter,
        clock=utcnow,
        resync_seconds=settings.resync_seconds,
        dry_run=settings.dry_run,
    )
    runtime: Runtime
    queue = ReconcileQueue(lambda service: runtime.handle(service))
    scheduler = Scheduler(queue.enqueue, lambda: [s.name for s in runtime.config.services])
    runtime = Runtime(
        settings=settings,
        config=config,
        redis=client,
        store=store,
        audit=audit,
        ledger=ledger,
        heroku=heroku,
        reconciler=reconciler,
        queue=queue,
        scheduler=scheduler,
        heroku_secret=secret,
        sandbox=sandbox,
        embedded=embedded,
    )
    queue.start()
    scheduler.start(settings.tick_seconds)
    if sandbox is not None:
        await sandbox.start()
    scheduler.tick()  # resume promotions in flight and catch up at once
    mode = "SANDBOX (simulated Heroku, nothing real is promoted)" if sandbox else "heroku"
    log.info(
        "cascade started platform=%s services=%d config=%s tick=%ss dry_run=%s",
        mode,
        len(config.services),
        config.path,
        settings.tick_seconds,
        settings.dry_run,
    )
    return runtime


async def stop(runtime: Runtime) -> None:
    runtime.scheduler.stop()
    await runtime.queue.stop()
    if runtime.sandbox is not None:
        await runtime.sandbox.stop()
    await runtime.heroku.aclose()
    await runtime.redis.aclose()
    if runtime.embedded is not None:
        await asyncio.to_thread(runtime.embedded.stop)
    log.info("cascade stopped")


def _platform(
    settings: Settings, config: ServicesConfig, app: FastAPI, store: Store
) -> tuple[SecretStr | None, sandboxes.Sandbox | None, HerokuClient]:
    """The real Platform API, or the sandbox served in-process when no token is set."""
    if settings.heroku_api_key is not None:
        client = HerokuClient(
            settings.heroku_api_url, settings.heroku_api_key.get_secret_value(), slugs=store
        )
        return settings.heroku_webhook_secret, None, client
    secret = settings.heroku_webhook_secret or SecretStr(secrets.token_urlsafe(32))
    sandbox, transport = sandboxes.in_process(
        config,
        cascade=app,
        webhook_secret=secret.get_secret_value(),
        deploy_every=settings.sandbox_deploy_seconds,
    )
    client = HerokuClient("http://sandbox.invalid", "sandbox", slugs=store, transport=transport)
    return secret, sandbox, client
