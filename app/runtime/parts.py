"""The parts of the composition root (`app.runtime`) that the test worlds and the simulation
build with too, so the wiring is written once: the engine on one Redis, the queue's worker
step, and what the routes read.
"""

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from pydantic import SecretStr
from starlette.datastructures import State

from app import logs
from app.config.catalog import Catalog
from app.config.reload import Reloader
from app.config.settings import Settings
from app.engine.promote import Promoter
from app.engine.reconcile import Reconciler
from app.engine.releases import Releases
from app.engine.rollback import Rollbacks
from app.engine.topologies import Topologies
from app.heroku.client import HerokuClient
from app.metrics import Metrics
from app.signals.views import Views
from app.storage.audit import Audit
from app.storage.client import Client
from app.storage.dora_record import DoraRecord
from app.storage.epoch import Epoch
from app.storage.ledger import Ledger
from app.storage.live import Live
from app.storage.locks import Locks
from app.storage.store import Store
from app.webhooks.intake import Intake

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Engine:
    """What decides and acts on one Redis: a process's, a test world's, a simulated process's."""

    store: Store
    audit: Audit
    ledger: Ledger
    reconciler: Reconciler


def engine(
    client: Client,
    store: Store,
    heroku: HerokuClient,
    catalog: Catalog,
    views: Views,
    clock: Clock,
    owner: str,
    *,
    resync_seconds: float,
    dry_run: bool = False,
    epoch: Epoch | None = None,
    live: Live | None = None,
    durable: Callable[[str], Awaitable[bool]] | None = None,
    unannounced: Callable[[str], None] | None = None,
) -> Engine:
    """The reconciler and what it writes with; `durable` waits for a claim to be kept."""
    audit, ledger = Audit(client), Ledger(client)
    releases = Releases(heroku, store, clock, resync_seconds)
    reconciler = Reconciler(
        config=catalog,
        heroku=heroku,
        store=store,
        ledger=ledger,
        locks=Locks(client),
        audit=audit,
        promoter=Promoter(heroku, store, ledger, audit, clock, owner, durable=durable),
        clock=clock,
        views=views,
        topologies=Topologies(heroku, store, releases),
        releases=releases,
        dry_run=dry_run,
        live=live,
        epoch=epoch,
        rollback=Rollbacks(heroku, store, audit, clock),
        unannounced=unannounced,
    )
    return Engine(store, audit, ledger, reconciler)


async def work(
    reconciler: Reconciler,
    metrics: Metrics,
    wake: Callable[[str, datetime], None],
    again: Callable[[str], None],
    service: str,
) -> None:
    """The queue's worker step: reconcile, then arrange to look again."""
    with logs.scope(service=service), metrics.reconciles.labels(service).time():
        outcome = await reconciler.reconcile(service)
    if outcome.plan is not None:
        metrics.plan(service, outcome.plan)
    if outcome.wake_at is not None:
        wake(service, outcome.wake_at)
    if outcome.again:
        again(service)


def intake(
    settings: Settings,
    catalog: Catalog,
    built: Engine,
    views: Views,
    metrics: Metrics,
    enqueue: Callable[[str], None],
    heroku_secret: SecretStr | None,
) -> Intake:
    """What every webhook route is handed (`app.webhooks.intake`)."""
    return Intake(
        catalog=catalog,
        store=built.store,
        views=views,
        audit=built.audit,
        metrics=metrics,
        topologies=built.reconciler.topologies,
        enqueue=enqueue,
        clock=built.reconciler.clock,
        heroku_secret=heroku_secret,
        github_secret=settings.github_webhook_secret,
        token=settings.webhook_token,
    )


def routes(
    settings: Settings,
    catalog: Catalog,
    built: Engine,
    views: Views,
    epoch: Epoch,
    metrics: Metrics,
    dora: DoraRecord,
    enqueue: Callable[[str], None],
    tick: Callable[[], None],
    intake: Intake,
    live: Live | None = None,
    reloader: Reloader | None = None,
) -> dict[str, object]:
    """What the routes read, by the names `app.api.deps` and `app.webhooks.intake` ask for."""
    pieces = vars(built) | {"settings": settings, "catalog": catalog, "views": views}
    pieces |= {"epoch": epoch, "metrics": metrics, "dora": dora, "enqueue": enqueue}
    return pieces | {"tick": tick, "live": live, "reloader": reloader, "intake": intake}


def serve(state: State, pieces: Mapping[str, object]) -> None:
    """Put `routes`' pieces where the routes read them (None: withdrawn)."""
    for name, piece in pieces.items():
        setattr(state, name, piece)
