"""The one composition root: every piece of a running Cascade, built in dependency order inside
an `AsyncExitStack` and torn down in reverse (`open`, run by the app's lifespan).

Nothing else builds a collaborator or sets one on another after it is built: each piece is
handed here what it uses. The engine, the worker step and what the routes read are built by
`app.runtime.parts`, which the test worlds and the simulation use too.
"""

import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from pydantic import SecretStr
from starlette.applications import Starlette

from app import logs
from app import sandbox as sandboxes
from app.clock import utcnow
from app.config import admin_token
from app.config.catalog import Catalog
from app.config.reload import Reloader, Watcher
from app.config.services import Service, load_services
from app.config.settings import Settings
from app.core.models import Snapshot
from app.engine.queue import ReconcileQueue
from app.engine.reconcile import Reconciler
from app.engine.scheduler import Scheduler
from app.heroku.client import HerokuClient
from app.heroku.manual import managed
from app.heroku.subscriptions import Subscriptions
from app.heroku.suspects import Suspects
from app.metrics import Metrics
from app.notify.commit_status import CommitStatuses
from app.notify.deployments import Deployments
from app.notify.slack import Notifier, plans_of
from app.runtime import platform
from app.runtime.parts import engine, intake, routes, serve, work
from app.signals.poller import Poller
from app.signals.views import Views
from app.storage.audit import Audit, Event
from app.storage.client import Client, on_cluster
from app.storage.dora_record import DoraRecord
from app.storage.epoch import Epoch
from app.storage.ledger import Ledger
from app.storage.live import Live
from app.storage.locks import Locks
from app.storage.store import Store

log = logging.getLogger("cascade")


class _Listener(Protocol):
    async def on_event(self, event: Event) -> None: ...


@dataclass(frozen=True)
class Runtime:
    """What `open` built: read by `app.main` and by whoever runs Cascade in-process (tests)."""

    settings: Settings
    catalog: Catalog  # the services file running now
    redis: Client
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
    reloader: Reloader
    watcher: Watcher  # SIGHUP and the services file's modification time
    sandbox: sandboxes.Sandbox | None  # the simulated Heroku, without HEROKU_API_KEY
    notifier: Notifier | None  # Slack, when CASCADE_SLACK_WEBHOOK_URL is set
    subscriptions: Subscriptions | None  # with CASCADE_PUBLIC_URL
    commit_statuses: CommitStatuses | None  # with GITHUB_TOKEN
    deployments: Deployments | None  # with GITHUB_TOKEN


@asynccontextmanager
async def open(settings: Settings, app: Starlette) -> AsyncIterator[Runtime]:
    """Build and start everything, serve it on `app`, and tear it down on the way out: the
    intake stops first, then the queue drains, then what its decisions tell, then Redis."""
    catalog = Catalog(load_services(settings.config_path))
    settings = admin_token.for_sandbox(settings)
    if settings.admin_token is not None:  # the sandbox's is made here: never logged either
        logs.REDACT.add(settings.admin_token.get_secret_value())
    async with AsyncExitStack() as stack:
        client = await platform.redis_for(settings, stack)
        store = Store(client)
        owner = f"{socket.gethostname()}:{os.getpid()}"
        metrics = Metrics(owner, "sandbox" if settings.sandbox else "heroku")
        secret = platform.heroku_secret(settings)
        sandbox, heroku = platform.heroku_for(settings, catalog, app, store, metrics, secret)
        if sandbox is not None:  # started last; stopped once the queue has drained
            stack.push_async_callback(sandbox.stop)
        stack.push_async_callback(heroku.aclose)
        views = Views.from_settings(settings, client)
        stack.push_async_callback(views.aclose)
        live, dora, epoch = Live(client), DoraRecord(client), Epoch(client, utcnow, catalog.names)
        stack.push_async_callback(live.stop)
        # Between start-up and reloads an app's subscription is checked only on evidence: a
        # resync found a release of it that no webhook had brought.
        public, signing = settings.public_url, secret.get_secret_value() if secret else None
        suspects = (
            Suspects(settings.resync_seconds) if managed(public, signing, catalog.config) else None
        )
        built = engine(
            client,
            store,
            heroku,
            catalog,
            views,
            utcnow,
            owner,
            resync_seconds=settings.resync_seconds,
            dry_run=settings.dry_run,
            epoch=epoch,
            live=live,
            durable=epoch.durable,
            unannounced=suspects.suspect if suspects else None,
        )
        reconciler = built.reconciler
        await epoch.start(forget=reconciler.forget_all)
        stages = _stages(reconciler)

        def observe(service: Service) -> Awaitable[Snapshot]:
            return reconciler.snapshots.observe(service, catalog.freezes)

        plans = plans_of(catalog, observe)
        notifier = Notifier.from_settings(settings, client, store, plans)
        deployments = Deployments.from_settings(settings, client, catalog, stages)
        statuses = CommitStatuses.from_settings(settings, client, catalog, metrics)
        listeners: tuple[_Listener | None, ...] = (
            live,
            dora,
            notifier,
            metrics,
            statuses,
            deployments,
        )
        for listener in listeners:
            if listener is not None:
                built.audit.subscribe(listener.on_event)
        for teller in (notifier, deployments, statuses):  # their last notices still go out
            if teller is not None:
                teller.start()
                stack.push_async_callback(teller.stop)
        queue = ReconcileQueue()
        scheduler = Scheduler(queue.enqueue, catalog.names)
        queue.start(partial(work, reconciler, metrics, scheduler.wake, queue.enqueue))
        stack.push_async_callback(queue.stop, settings.shutdown_seconds)
        scheduler.start(settings.tick_seconds)
        stack.callback(scheduler.stop)
        every = settings.poll_seconds
        poller = Poller(views, client, lambda: catalog.services, queue.enqueue, every)
        poller.start()
        stack.push_async_callback(poller.stop)
        subscriptions = None
        if suspects is not None and public is not None and signing is not None:
            subscriptions = Subscriptions(
                heroku, client, Locks(client), stages, catalog, public, signing, suspects
            )
            subscriptions.start()
            stack.push_async_callback(subscriptions.stop)
        reloader = Reloader(
            settings.config_path,
            catalog,
            counted=metrics.reloaded,
            forget=_forgetting(reconciler, metrics, store),
            reconcile=queue.enqueue,
            grow=sandbox.grow if sandbox is not None else None,
            changed=subscriptions.request if subscriptions is not None else None,
        )
        watcher = Watcher(settings.config_path, reloader.reload, settings.reload_seconds)
        watcher.start()
        stack.push_async_callback(watcher.stop)
        epoch.watch()
        stack.push_async_callback(epoch.stop)
        if sandbox is not None:
            await sandbox.start()
        scheduler.tick()  # resume promotions in flight and catch up at once
        enqueue, tick = queue.enqueue, scheduler.tick
        webhooks = intake(settings, catalog, built, views, metrics, enqueue, secret)
        pieces = routes(
            settings,
            catalog,
            built,
            views,
            epoch,
            metrics,
            dora,
            enqueue,
            tick,
            webhooks,
            live,
            reloader,
        )
        serve(app.state, pieces)
        stack.callback(serve, app.state, dict.fromkeys(pieces))  # none read once torn down
        _started(settings, catalog, client, sandbox)
        yield Runtime(
            settings=settings,
            catalog=catalog,
            redis=client,
            store=store,
            audit=built.audit,
            ledger=built.ledger,
            heroku=heroku,
            reconciler=reconciler,
            queue=queue,
            scheduler=scheduler,
            metrics=metrics,
            live=live,
            epoch=epoch,
            views=views,
            poller=poller,
            dora=dora,
            heroku_secret=secret,
            reloader=reloader,
            watcher=watcher,
            sandbox=sandbox,
            notifier=notifier,
            subscriptions=subscriptions,
            commit_statuses=statuses,
            deployments=deployments,
        )
    log.info("cascade stopped")


def _stages(reconciler: Reconciler) -> Callable[[Service], Awaitable[Sequence[str] | None]]:
    """A service's stage apps in promotion order: configured, else the pipeline's."""

    async def stages(service: Service) -> Sequence[str] | None:
        if service.stages:
            return service.stages
        topology = await reconciler.topologies.get(service)
        return topology.stages if topology else None

    return stages


def _forgetting(
    reconciler: Reconciler, metrics: Metrics, store: Store
) -> Callable[[str], Awaitable[None]]:
    """What a reload drops of a service it changed or removed: its pipeline is read afresh."""

    async def forget(name: str) -> None:
        reconciler.forget(name)
        metrics.forget(name)
        await store.forget_topology(name)

    return forget


def _started(
    settings: Settings, catalog: Catalog, client: Client, sandbox: sandboxes.Sandbox | None
) -> None:
    if settings.public_url_from_heroku:
        log.info(
            "CASCADE_PUBLIC_URL is unset: using %s from Heroku's dyno metadata"
            " (HEROKU_APP_DEFAULT_DOMAIN_NAME)",
            settings.public_url,
        )
    mode = "SANDBOX (simulated Heroku, nothing real is promoted)" if sandbox else "heroku"
    log.info(
        "cascade started platform=%s redis=%s services=%d config=%s tick=%ss dry_run=%s",
        mode,
        "embedded" if settings.redis_url is None else "cluster" if on_cluster(client) else "server",
        len(catalog.services),
        catalog.config.path,
        settings.tick_seconds,
        settings.dry_run,
    )
