"""A service's snapshot: everything the plan may look at, read once, with `now` stamped.

A reconcile sends the first reads in its lock's batch (`send_reads`): the service's view, and
what the signals' views can read before it is known, a round trip fewer than later. Then two
rounds of Redis reads: the stages (unless the caller has a fresh view), then, at once,
what depends on their commits: the histories each moving pair needs, its promotion record,
the records in flight, and the signals (`Views.gather`). A third when a source's commit is
too young and an older one proved itself there (`app.core.proven`): what that one needs too.
"""

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from app.config.services import Freeze, Service
from app.core.models import PromotionRecord, Release, Signals, Snapshot, StageView, adjacent
from app.engine.topologies import Topologies
from app.engine.topology import Topology
from app.signals.freezes.windows import windows
from app.signals.views import Prefetched, Views
from app.storage.batch import Batch, Reply
from app.storage.epoch import Epoch
from app.storage.ledger import Ledger
from app.storage.store import Histories, ServiceView, Store


@dataclass(frozen=True)
class Prefetch:
    """What a reconcile reads with its lock (`Snapshots.send_reads`), once it is sent."""

    view: Reply[ServiceView]
    signals: Prefetched


class Snapshots:
    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        views: Views,
        topologies: Topologies,
        clock: Callable[[], datetime],
        epoch: Epoch | None = None,
    ) -> None:
        self.store, self.ledger, self.views, self.clock = store, ledger, views, clock
        self.topologies = topologies  # a pipeline that cannot be read is the snapshot's problem
        self.epoch = epoch  # so is Cascade's data lost in Redis

    def send_reads(self, batch: Batch, service: Service, apps: Sequence[str]) -> Prefetch:
        """Add the view's reads of the stages `apps` to `batch`, and the signals'."""
        view = self.store.send_view(batch, service.name, apps)
        return Prefetch(view, self.views.send_reads(batch, service))

    async def observe(self, service: Service, freezes: Sequence[Freeze]) -> Snapshot:
        """The service as it stands, for status, retries and notices: no lock, no Platform API
        call, and the signals' views as Redis holds them (no GitHub, status page or URL call)."""
        topology = await self.topologies.cached(service)
        return (await self.read(service, topology, freezes, fetch=False))[0]

    async def read(
        self,
        service: Service,
        topology: Topology | None,
        freezes: Sequence[Freeze],
        *,
        fetch: bool,
        view: ServiceView | None = None,
        prefetched: Prefetched | None = None,
    ) -> tuple[Snapshot, dict[str, str]]:
        """The snapshot, and the gate states last audited: two rounds of Redis reads.

        The first reads the stages (unless `view` is a fresh one); the second, at once,
        what depends on their commits. `fetch=False` reads the signals' views in Redis only.
        """
        name, now = service.name, self.clock()
        apps = topology.stages if topology else service.stages or ()
        if view is None:
            view = await self.store.view(name, apps)
        moving = [
            (source, target)
            for source, target in adjacent(service, view.stages)
            if source.commit and source.commit != target.commit
        ]
        if not moving:  # no gate will be asked: nothing more to read
            return self.build(service, now, view, topology=topology), view.gate_states
        # Where a commit proved itself: arrived by the next stage's `min_age` ago.
        # (of a wave's targets, the longest: a commit proved itself for all of them)
        cutoffs: dict[str, datetime] = {}
        for s, t in moving:
            cutoff = now - service.min_age_for(t.app)
            cutoffs[s.app] = min(cutoff, cutoffs.get(s.app, cutoff))
        read = await self._read(service, view, moving, cutoffs, now, freezes, fetch, prefetched)
        proven = _proven(moving, read[0], cutoffs)
        if proven:  # read again with what each proven commit's own decision needs
            also = [(StageView(s.app, proven[s.app]), t) for s, t in moving if s.app in proven]
            read = await self._read(
                service, view, moving + also, cutoffs, now, freezes, fetch, prefetched
            )
        histories, promotions, unsettled, signals = read
        in_flight = {record.target: record for record in unsettled}
        snapshot = self.build(
            service, now, view, histories, promotions, signals, in_flight, topology=topology
        )
        return snapshot, view.gate_states

    async def _read(
        self,
        service: Service,
        view: ServiceView,
        moving: Sequence[tuple[StageView, StageView]],
        cutoffs: dict[str, datetime],
        now: datetime,
        freezes: Sequence[Freeze],
        fetch: bool,
        prefetched: Prefetched | None,
    ) -> tuple[Histories, dict[tuple[str, str], PromotionRecord], list[PromotionRecord], Signals]:
        """What the decisions of the `moving` pairs read, at once."""
        name = service.name
        # Each pair's two commits in its source and every stage before it (`order.held`).
        wanted: dict[str, list[str]] = {}
        index = {stage.app: i for i, stage in enumerate(view.stages)}
        for source, target in moving:
            both = [c for c in (source.commit, target.commit) if c is not None]
            for stage in view.stages[: index[source.app] + 1]:
                wanted.setdefault(stage.app, []).extend(both)
        return await asyncio.gather(
            self.store.history(name, wanted, cutoffs),
            self.ledger.find(name, [(t.app, s.commit or "") for s, t in moving]),
            self.ledger.unsettled(name) if view.in_flight else _nothing(),
            self.views.gather(
                service,
                [(s.commit, t.commit) for s, t in moving if s.commit and t.commit],
                now,
                windows(freezes, name, now),
                fetch=fetch,
                prefetched=prefetched,
            ),
        )

    def build(
        self,
        service: Service,
        now: datetime,
        view: ServiceView,
        histories: Histories | None = None,
        promotions: dict[tuple[str, str], PromotionRecord] | None = None,
        signals: Signals | None = None,
        in_flight: dict[str, PromotionRecord] | None = None,
        *,
        topology: Topology | None = None,
    ) -> Snapshot:
        """The snapshot of what was read; with the view alone, of a service with no pair to
        decide (no history, record or signal is asked for then)."""
        return Snapshot(
            service=service,
            now=now,
            stages=view.stages,
            history=histories.arrived if histories else {},
            positions=histories.positions if histories else {},
            global_pause=view.global_pause,
            service_pause=view.service_pause,
            promotions=promotions or {},
            in_flight=in_flight or {},
            problem=(self.epoch and self.epoch.lost) or self.topologies.problems.get(service.name),
            signals=signals or Signals(),
            proven=histories.proven if histories else {},
            proves_at=_proves_at(service, view, histories) if histories else {},
            container_stack=frozenset(topology.container) if topology else frozenset(),
            suspects=view.suspects,
        )


def _proven(
    moving: Sequence[tuple[StageView, StageView]],
    histories: Histories,
    cutoffs: dict[str, datetime],
) -> dict[str, Release]:
    """Per source app whose commit is too young to move, the release there whose commit
    proved itself, when that is neither the source's commit nor its target's."""
    found = {}
    for source, target in moving:
        release = histories.proven.get(source.app)
        arrived = histories.arrived.get(source.app, {}).get(source.commit or "")
        young = arrived is not None and arrived > cutoffs[source.app]
        if release is not None and young and release.commit not in (source.commit, target.commit):
            found[source.app] = release
    return found


def _proves_at(service: Service, view: ServiceView, histories: Histories) -> dict[str, datetime]:
    """When each source's next commit will have run the next stage's `min_age` there (of a
    wave's targets, the longest)."""
    found: dict[str, datetime] = {}
    for source, target in adjacent(service, view.stages):
        if source.app in histories.next_arrival:
            at = histories.next_arrival[source.app] + service.min_age_for(target.app)
            found[source.app] = max(at, found.get(source.app, at))
    return found


async def _nothing() -> list[PromotionRecord]:
    return []
