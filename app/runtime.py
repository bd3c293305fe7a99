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
from datetime import datetime

import redis.asyncio as redis
from fastapi import FastAPI
from pydantic import SecretStr
from redis.exceptions import RedisError

from app import logs
from app import sandbox as sandboxes
from app.clock import utcnow
from app.config import admin_token
from app.config.reload import ConfigProblem, Reloader, Watcher
from app.config.services import ServicesConfig, load_services
from app.config.settings import Settings
from app.engine import upkeep
from app.engine.promote import Promoter
from app.engine.queue import ReconcileQueue
from app.engine.reconcile import Reconciler
from app.engine.releases import Releases
from app.engine.rollback import Rollbacks
from app.engine.scheduler import Scheduler
from app.engine.topologies import Topologies
from app.heroku.client import CallObserver, HerokuClient
from app.heroku.subscriptions import Subscriptions
from app.metrics import Metrics
from app.notify.commit_status import CommitStatuses
from app.notify.deployments import Deployments
from app.notify.slack import Notifier
from app.signals.poller import Poller
from app.signals.views import Views
from app.storage.audit import Audit
from app.storage.client import UnsupportedRedis, connect, refuse_a_cluster
from app.storage.dora_record import DoraRecord
from app.storage.embedded import EmbeddedRedis
from app.storage.epoch import Epoch
from app.storage.ledger import Ledger
from app.storage.live import Live
from app.storage.locks import Locks
from app.storage.store import Store

log = logging.getLogger("cascade")


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
    metrics: Metrics  # this process's Prometheus metrics, served at /metrics
    live: Live  # tells dashboards in every process what changed
    epoch: Epoch  # notices when Redis lost Cascade's data; `POST /recover` confirms it
    views: Views  # the signals' views (GitHub, alerts, incidents, URLs) and their readers
    poller: Poller  # the fallback feeds' clock
    dora: DoraRecord  # what delivery metrics are computed from, kept from the audit trail
    heroku_secret: SecretStr | None
    sandbox: sandboxes.Sandbox | None = None
    embedded: EmbeddedRedis | None = None
    notifier: Notifier | None = None  # Slack, when CASCADE_SLACK_WEBHOOK_URL is set
    started_at: datetime = field(default_factory=utcnow)
    subscriptions: Subscriptions | None = None  # with CASCADE_PUBLIC_URL
    commit_statuses: CommitStatuses | None = None  # with GITHUB_TOKEN
    deployments: Deployments | None = None  # with GITHUB_TOKEN
    reloader: Reloader | None = None
    watcher: Watcher | None = None  # SIGHUP and the services file's modification time
    config_problem: ConfigProblem | None = None  # the last reload refused, until one succeeds

    async def handle(self, service: str) -> None:
        """The queue's worker step: reconcile, then arrange to look again."""
        with logs.scope(service=service), self.metrics.reconciles.labels(service).time():
            outcome = await self.reconciler.reconcile(service)
        if outcome.plan is not None:
            self.metrics.plan(service, outcome.plan)
        if outcome.wake_at is not None:
            self.scheduler.wake(service, outcome.wake_at)
        if outcome.again:
            self.queue.enqueue(service)


async def start(settings: Settings, app: FastAPI) -> Runtime:
    config = load_services(settings.config_path)
    settings = _with_sandbox_admin_token(settings)
    embedded = None
    if settings.redis_url is None:
        embedded = EmbeddedRedis(settings.data_dir / "redis")
        await asyncio.to_thread(embedded.start)
        url = embedded.url
    else:
        url = settings.redis_url.get_secret_value()
    client = connect(url)
    if embedded is None:
        await _one_server(client)
    store = Store(client)
    owner = f"{socket.gethostname()}:{os.getpid()}"
    metrics = Metrics(owner, "sandbox" if settings.heroku_api_key is None else "heroku")
    secret, sandbox, heroku = _platform(settings, config, app, store, metrics.heroku_call)
    if secret is not None:  # the sandbox's is made here: it must never be logged either
        logs.REDACT.add(secret.get_secret_value())
    audit, ledger = Audit(client), Ledger(client)
    views = Views.from_settings(settings, client)
    epoch = Epoch(client, utcnow, forget=lambda: reconciler.forget_all())
    await epoch.start()
    promoter = Promoter(heroku, store, ledger, audit, utcnow, owner, durable=epoch.durable)
    live = Live(client)
    releases = Releases(heroku, store, utcnow, settings.resync_seconds)
    reconciler = Reconciler(
        config=config,
        heroku=heroku,
        store=store,
        ledger=ledger,
        locks=Locks(client),
        audit=audit,
        promoter=promoter,
        clock=utcnow,
        views=views,
        topologies=Topologies(heroku, store, releases),
        releases=releases,
        dry_run=settings.dry_run,
        live=live,
        epoch=epoch,
        rollback=Rollbacks(heroku, store, audit, utcnow),
    )
    if settings.public_url_from_heroku:
        log.info(
            "CASCADE_PUBLIC_URL is unset: using %s from Heroku's dyno metadata"
            " (HEROKU_APP_DEFAULT_DOMAIN_NAME)",
            settings.public_url,
        )
    runtime: Runtime
    queue = ReconcileQueue(lambda service: runtime.handle(service))
    scheduler = Scheduler(queue.enqueue, lambda: [s.name for s in runtime.config.services])
    poller = Poller(
        views, client, lambda: runtime.config.services, queue.enqueue, settings.poll_seconds
    )
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
        metrics=metrics,
        live=live,
        epoch=epoch,
        views=views,
        poller=poller,
        dora=DoraRecord(client),
        heroku_secret=secret,
        sandbox=sandbox,
        embedded=embedded,
    )
    audit.subscribe(runtime.live.on_event)
    audit.subscribe(runtime.dora.on_event)
    runtime.notifier = Notifier.for_runtime(runtime)
    upkeep.start(runtime)
    queue.start()
    scheduler.start(settings.tick_seconds)
    poller.start()
    epoch.watch()
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
    await runtime.epoch.stop()
    await runtime.poller.stop()
    await upkeep.stop_intake(runtime)
    await runtime.queue.stop(grace=runtime.settings.shutdown_seconds)
    await upkeep.stop(runtime)
    if runtime.sandbox is not None:
        await runtime.sandbox.stop()
    await runtime.heroku.aclose()
    await runtime.views.aclose()
    if runtime.notifier is not None:
        await runtime.notifier.stop()
    await runtime.live.stop()
    await runtime.redis.aclose()
    if runtime.embedded is not None:
        await asyncio.to_thread(runtime.embedded.stop)
    log.info("cascade stopped")


async def _one_server(client: "redis.Redis") -> None:
    """Refuse a Redis Cluster at start; one not reachable yet is told by `/readyz`, as before."""
    try:
        await refuse_a_cluster(client)
    except (RedisError, OSError):
        return
    except UnsupportedRedis:
        await client.aclose()
        raise


def _with_sandbox_admin_token(settings: Settings) -> Settings:
    """The sandbox is a playground: without CASCADE_ADMIN_TOKEN it keeps a token of its own
    in its data directory, for the `cascade` command on this machine. Never elsewhere."""
    if not settings.sandbox or settings.admin_token is not None:
        return settings
    token = admin_token.sandbox_token(settings.data_dir)
    logs.REDACT.add(token.get_secret_value())
    log.info(
        "sandbox: CASCADE_ADMIN_TOKEN not set, so writes need the token kept in %s"
        " (the cascade command on this machine reads it from there)",
        admin_token.path(settings.data_dir).resolve(),
    )
    return settings.model_copy(update={"admin_token": token})


def _platform(
    settings: Settings, config: ServicesConfig, app: FastAPI, store: Store, observe: CallObserver
) -> tuple[SecretStr | None, sandboxes.Sandbox | None, HerokuClient]:
    """The real Platform API, or the sandbox served in-process when no token is set."""
    if settings.heroku_api_key is not None:
        client = HerokuClient(
            settings.heroku_api_url,
            settings.heroku_api_key.get_secret_value(),
            commits=store,
            observe=observe,
        )
        return settings.heroku_webhook_secret, None, client
    secret = settings.heroku_webhook_secret or SecretStr(secrets.token_urlsafe(32))
    sandbox, transport = sandboxes.in_process(
        config,
        cascade=app,
        webhook_secret=secret.get_secret_value(),
        deploy_every=settings.sandbox_deploy_seconds,
    )
    client = HerokuClient(
        "http://sandbox.invalid", "sandbox", commits=store, transport=transport, observe=observe
    )
    return secret, sandbox, client
