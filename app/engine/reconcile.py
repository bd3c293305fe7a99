"""The reconcile of one service, start to end.

Under the service's lock: know the topology, resync when due, follow promotions
in flight, build the snapshot once (all I/O, `now` stamped), check for a halt, plan
(pure), act on what is ready, record what changed. Running it twice is harmless. A
service found settled last time is first looked at without the lock: it needs no decision.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.config.catalog import Catalog
from app.config.services import Service
from app.core.models import Plan, Snapshot
from app.core.plan import FOLLOW_FIRST, plan
from app.engine.follow import Follower
from app.engine.halter import Halter, RollBack
from app.engine.history import HistoryReader
from app.engine.promote import Promoter
from app.engine.releases import Releases
from app.engine.snapshot import Prefetch, Snapshots
from app.engine.topologies import Topologies
from app.engine.topology import Topology
from app.heroku.client import HerokuClient, HerokuError, NotFound
from app.signals.views import Prefetched, Views
from app.storage.audit import Audit, record_gate_changes
from app.storage.batch import Batch
from app.storage.epoch import Epoch
from app.storage.ledger import Ledger
from app.storage.live import Live, fingerprint
from app.storage.locks import Locks
from app.storage.store import ServiceView, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What a reconcile decided, and when to look again without outside news."""

    plan: Plan | None
    wake_at: datetime | None
    again: bool  # news arrived while it ran, from this or another process
    shown: int | None = None  # a fingerprint of what a status page shows of the service
    settled: bool = False  # every stage runs its source's commit, nothing in flight or audited


class Reconciler:
    def __init__(
        self,
        *,
        config: Catalog,
        heroku: HerokuClient,
        store: Store,
        ledger: Ledger,
        locks: Locks,
        audit: Audit,
        promoter: Promoter,
        clock: Callable[[], datetime],
        views: Views,
        topologies: Topologies,
        releases: Releases,
        dry_run: bool = False,
        live: Live | None = None,
        epoch: Epoch | None = None,
        rollback: RollBack | None = None,
        unannounced: Callable[[str], None] | None = None,
    ) -> None:
        self.config, self.store, self.ledger, self.locks = config, store, ledger, locks
        self.audit, self.promoter, self.clock, self.views = audit, promoter, clock, views
        self.topologies, self.releases, self.dry_run = topologies, releases, dry_run
        self.live = live  # told when a service's pages would change
        self.epoch = epoch  # says when Redis lost Cascade's data: then nothing is promoted
        # Told of each stage app whose release a resync found before any webhook brought it:
        # the evidence that its webhook subscription may be broken (`app.heroku.subscriptions`).
        self.unannounced = unannounced
        self.snapshots = Snapshots(store, ledger, views, topologies, clock, epoch)
        self.histories = HistoryReader(heroku, store, clock)  # what ran on each source app
        self.follower = Follower(heroku, store, ledger, audit, clock)
        # The auto-halt; a dry run changes nothing on Heroku, so it rolls nothing back.
        self.halter = Halter(store, ledger, views, audit, None if dry_run else rollback)
        # Services found settled, with this process's count of folds into their stages then:
        # until a fold changes that count, a reconcile first looks without the lock.
        self._settled: dict[str, int] = {}

    def forget(self, name: str) -> None:
        """The services file changed or dropped the service: know its pipeline afresh."""
        self.topologies.forget(name)
        self.releases.forget(name)
        self.histories.forget(name)
        self._settled.pop(name, None)

    def forget_all(self) -> None:
        """Redis lost Cascade's data (`app.storage.epoch`): what this process learnt from it is
        void."""
        self.topologies.forget_all()
        self.releases.forget_all()
        self.histories.forget_all()
        self._settled.clear()
        if self.live is not None:
            self.live.forget_shown()
        self.store.forget_kept()

    async def reconcile(self, name: str) -> Outcome:
        service = self.config.get(name)
        if service is None:
            return Outcome(None, None, again=False)
        known = await self.topologies.cached(service)
        folds = self.store.folds(name)
        if known is not None and self._settled.get(name) == folds:
            settled = await self._still_settled(service, known)
            if settled is not None:
                if self.live is not None and self.live.redraws(name, settled.shown):
                    await self.live.changed(name)
                return settled
        # The view and the status page's are read in the round trip that takes the lock,
        # when the stages are known.
        batch = Batch()
        read = self.snapshots.send_reads(batch, service, known.stages) if known else None
        async with self.locks.hold(name, batch) as lease:
            if lease.held:
                outcome = await self._reconcile(service, known, read)
                if self.live is not None and self.live.redraws(name, outcome.shown):
                    self.live.send_change(lease.released, name)  # in the round trip that releases
        if not lease.held:
            # The holder runs again for our news; should it have died, try when its lock expires.
            expiry = self.clock() + timedelta(seconds=await self.locks.busy_for(name) + 0.1)
            return Outcome(None, expiry, again=False)
        if outcome.settled:
            self._settled[name] = folds
        else:
            self._settled.pop(name, None)
        return Outcome(outcome.plan, outcome.wake_at, lease.news, outcome.shown, outcome.settled)

    async def _still_settled(self, service: Service, topology: Topology) -> Outcome | None:
        """The outcome for a service that is still settled, read without its lock; else None.

        Settled: every stage runs the commit of the one before it, no promotion is in flight,
        no gate state is left to clear, no resync is due. Nothing can be decided then, so
        the lock and what it guards are not needed: one round trip, not two (most services
        are settled most of the time, and a signal for everything reconciles them all). Only
        a stage change unsettles one: a fold in this process, which skips this look, or in
        another, which finds a pair to move here and goes the locked way.
        """
        name = service.name
        view = await self.store.view(name, topology.stages)
        if view.resync_due or view.in_flight or view.gate_states:
            return None
        if not self.releases.caught_up(name):  # read once per process, under the lock
            return None
        snapshot = self.snapshots.build(service, self.clock(), view, topology=topology)
        if await self.halter.check(snapshot):  # a promotion into the last stage, halted
            return None
        decided = plan(snapshot)
        if decided.candidates:
            return None
        return Outcome(
            decided, None, again=False, shown=fingerprint(snapshot, decided), settled=True
        )

    async def _reconcile(
        self, service: Service, known: Topology | None, read: Prefetch | None
    ) -> Outcome:
        """Under the lock; `read` was read with it, from the stages of `known`, when known."""
        topology = known or await self.topologies.get(service)
        if topology is None:
            return Outcome(None, None, again=False)
        # One read says what is due; the view is read again only if something was done.
        view = read.view.value if read else await self.store.view(service.name, topology.stages)
        topology, stale = await self._catch_up(service, topology, view)
        if topology is None:
            return Outcome(None, None, again=False)
        if view.in_flight:
            await self.follower.follow(service.name, topology)
            stale = True
        snapshot, audited = await self._snapshot(
            service, topology, None if stale else view, read.signals if read else None
        )
        decided = plan(snapshot)
        # The decision's audit entries are written while the promotions go out: the POST
        # waits for nothing else, and a promotion's own entry comes after its POST.
        _, promoted = await asyncio.gather(
            record_gate_changes(self.audit, self.store, snapshot, decided, audited, self.dry_run),
            self._promote(snapshot, topology, decided),
        )
        wake_at = decided.wake_at
        if promoted:
            follow_at = snapshot.now + FOLLOW_FIRST
            wake_at = min(wake_at, follow_at) if wake_at else follow_at
        settled = not decided.candidates and not view.in_flight and not stale
        return Outcome(decided, wake_at, False, fingerprint(snapshot, decided), settled)

    async def _catch_up(
        self, service: Service, topology: Topology, view: ServiceView
    ) -> tuple[Topology | None, bool]:
        """Resync when due and learn the sources' histories: the topology (read again when
        Heroku no longer knows it; None if it cannot be), and whether the view went stale."""
        name, stale = service.name, False
        try:
            caught_up = self.releases.caught_up(name)
            if await self.releases.due(name, view):
                news = await self.releases.resync(name, topology)
                if caught_up and self.unannounced is not None:
                    for app in news:
                        self.unannounced(app)
                stale = bool(news)
            await self.histories.learn(name, topology)
        except NotFound as error:
            # A cached id Heroku no longer knows: the pipeline or an app was re-created.
            log.warning("pipeline of service=%s not found, reading it again: %s", name, error)
            self.forget(name)
            await self.store.forget_topology(name)
            relearnt = await self.topologies.get(service, topology)
            if relearnt is not None:
                try:
                    await self.histories.learn(name, relearnt)
                except HerokuError as error:
                    log.warning("cannot learn history service=%s: %s", name, error)
            return relearnt, True
        except HerokuError as error:
            log.warning("resync failed service=%s: %s", name, error)
        return topology, stale

    async def _snapshot(
        self,
        service: Service,
        topology: Topology,
        view: ServiceView | None,
        prefetched: Prefetched | None,
    ) -> tuple[Snapshot, dict[str, str]]:
        """The snapshot to plan from, and the gate states last audited; read again when a
        look further back placed a commit, and after a halt (with its pause and suspect)."""
        freezes = self.config.freezes
        read = await self.snapshots.read(
            service, topology, freezes, fetch=True, view=view, prefetched=prefetched
        )
        if await self.histories.look_further_back(service.name, read[0]):
            read = await self.snapshots.read(service, topology, freezes, fetch=True, view=view)
        if await self.halter.check(read[0]):
            read = await self.snapshots.read(service, topology, freezes, fetch=True)
        return read

    async def _promote(self, snapshot: Snapshot, topology: Topology, decided: Plan) -> bool:
        """Promote every ready candidate; True when a POST was sent.

        Not while Redis's data is lost: the records that keep a promotion once may be gone.
        """
        if self.dry_run or not decided.ready:
            return False
        if self.epoch is not None and await self.epoch.verify(snapshot.service.name) is not None:
            return False
        return await self.promoter.promote_ready(snapshot, topology, decided.ready)
