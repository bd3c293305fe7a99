"""A service's snapshot: everything the plan may look at, read once, with `now` stamped.

Two rounds of Redis reads: the stages (unless the caller has a fresh view), then, at once,
what depends on their commits: the histories each moving pair needs, its promotion record,
the records in flight, and the signals (`Health.gather`).
"""

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import pairwise

from app.epoch import Epoch
from app.freezes import windows
from app.health import Health, Prefetched
from app.ledger import Ledger
from app.models import PromotionRecord, Snapshot
from app.services import Freeze, Service
from app.signals import Signals
from app.store import Histories, ServiceView, Store
from app.topologies import Topologies
from app.topology import Topology


class Snapshots:
    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        health: Health,
        topologies: Topologies,
        clock: Callable[[], datetime],
        epoch: Epoch | None = None,
    ) -> None:
        self.store, self.ledger, self.health, self.clock = store, ledger, health, clock
        self.topologies = topologies  # a pipeline that cannot be read is the snapshot's problem
        self.epoch = epoch  # so is Cascade's data lost in Redis

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
        what depends on their commits.
        """
        name, now = service.name, self.clock()
        apps = topology.stages if topology else service.stages or ()
        if view is None:
            view = await self.store.view(name, apps)
        moving = [
            (source, target)
            for source, target in pairwise(view.stages)
            if source.commit and source.commit != target.commit
        ]
        # Each pair's two commits in its source and every stage before it (`order.held`).
        wanted: dict[str, list[str]] = {}
        index = {stage.app: i for i, stage in enumerate(view.stages)}
        for source, target in moving:
            both = [c for c in (source.commit, target.commit) if c is not None]
            for stage in view.stages[: index[source.app] + 1]:
                wanted.setdefault(stage.app, []).extend(both)
        if not moving:  # no gate will be asked: nothing more to read
            return self.build(service, now, view), view.gate_states
        histories, promotions, unsettled, signals = await asyncio.gather(
            self.store.history(name, wanted),
            self.ledger.find(name, [(t.app, s.commit or "") for s, t in moving]),
            self.ledger.unsettled(name) if view.in_flight else _nothing(),
            self.health.gather(
                service,
                [(s.commit, t.commit) for s, t in moving if s.commit and t.commit],
                now,
                windows(freezes, name, now),
                fetch=fetch,
                prefetched=prefetched,
            ),
        )
        in_flight = {record.target: record for record in unsettled}
        snapshot = self.build(service, now, view, histories, promotions, signals, in_flight)
        return snapshot, view.gate_states

    def build(
        self,
        service: Service,
        now: datetime,
        view: ServiceView,
        histories: Histories | None = None,
        promotions: dict[tuple[str, str], PromotionRecord] | None = None,
        signals: Signals | None = None,
        in_flight: dict[str, PromotionRecord] | None = None,
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
        )


async def _nothing() -> list[PromotionRecord]:
    return []
