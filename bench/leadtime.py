"""6. Lead time under continuous merges: does the last stage starve when commits come faster
than a stage's soak?

A 4-stage service with a soak `A` (min_age) per stage and a merge every `M` on the first
stage, for `M` from `A/4` to `4A`, in virtual time (the Reconciler on the in-process sandbox
and a real Valkey, as `tests/sandboxed.py` builds it; the clock jumps from one event to the
next: a merge, or the moment Cascade asked to be woken). Two strategies side by side:
Cascade's (a commit that proved itself moves on, `app.core.proven`) and promoting only the
source's current release (the round before; the same code with the proven path taken out).

Per run: how often the last stage receives a commit (the gaps between its changes) and each
commit's lead time, from its first release to the last stage running it or a newer commit,
beside the theoretical minimum: the three soaks plus three promotions, a promotion being the
least time a hop took beyond its soak in the run. A stage runs a commit from when Cascade
sees it run there (its age starts then): the sandbox copies a slug at once, and Cascade
looks at a promotion it sent 2 s later (`app.core.plan.FOLLOW_FIRST`). Goals: the last stage
receives a commit at least every `max(M, A)` plus one promotion; the median lead time within
1.1x the minimum. At `M = A` exactly, a commit comes of age at the very moment the next one
lands: promoting only the current release then never moves anything.
"""

import asyncio
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from statistics import median
from typing import Any
from unittest import mock

import redis.asyncio as redis

from app.config.services import Service, ServicesConfig
from app.storage.embedded import EmbeddedRedis
from tests.sandboxed import World, build_world, close_world

SOAK = timedelta(minutes=30)
RATIOS = (0.25, 0.5, 1.0, 2.0, 4.0)  # M / A
STAGES = ("lt-qa", "lt-st", "lt-va", "lt-eu")
MEASURED = 24  # commits whose lead time is measured, after a warm-up
WARM_UP = 4  # soaks: the history read at onboarding makes every commit then arrive at once


@dataclass
class Flow:
    """One run: a strategy at one merge interval."""

    strategy: str  # "proven" or "current only"
    merge_every: timedelta
    soak: timedelta
    lead: list[float] = field(default_factory=list)  # seconds, per measured commit
    gaps: list[float] = field(default_factory=list)  # seconds between last-stage changes
    hops: list[float] = field(default_factory=list)  # seconds a hop took beyond its soak
    starved: int = 0  # measured commits the last stage never received (nor a newer one)
    promotions: int = 0

    @property
    def ratio(self) -> float:
        return self.merge_every / self.soak

    @property
    def promotion(self) -> float:
        """One promotion: the least time a hop took beyond its soak (seconds)."""
        return min(self.hops, default=0.0)

    @property
    def minimum(self) -> float:
        """The theoretical least lead time: every soak, and a promotion per hop."""
        hops = len(STAGES) - 1
        return hops * (self.soak.total_seconds() + self.promotion)

    @property
    def starve_limit(self) -> float:
        return max(self.merge_every, self.soak).total_seconds() + self.promotion

    @property
    def never_starves(self) -> bool:
        return self.starved == 0 and bool(self.gaps) and max(self.gaps) <= self.starve_limit

    @property
    def lead_ok(self) -> bool:
        return bool(self.lead) and self.starved == 0 and median(self.lead) <= 1.1 * self.minimum


@contextmanager
def current_only() -> Iterator[None]:
    """The round before: only the source's current release moves (the proven path out)."""

    def waiting(snapshot: Any, pair: Any, gates: Any, young: Any, proven: Any) -> Any:
        return young

    with (
        mock.patch("app.core.plan._proven", waiting),
        mock.patch("app.engine.snapshot._proves_at", return_value={}),
    ):
        yield


async def flow(client: "redis.Redis", strategy: str, merge_every: timedelta) -> Flow:
    """One run in virtual time; `client`'s database is emptied first."""
    await client.flushdb()
    service = Service("lt", "lt", STAGES, min_age=SOAK)
    config = ServicesConfig(Path("leadtime.toml"), services=(service,))
    world = await build_world(client, config, resync_seconds=0.001, release_seconds=0.001)
    try:
        return await _run(world, Flow(strategy, merge_every, SOAK))
    finally:
        await close_world(world)


async def _run(world: World, found: Flow) -> Flow:
    clock, sandbox, last = world.clock, world.sandbox, STAGES[-1]
    start = clock.now
    # Merges go on to the end: the commits measured are those of the first part, and each has
    # long enough after it to reach the last stage, however late it starts.
    measure_from = start + WARM_UP * SOAK
    measure_to = measure_from + MEASURED * found.merge_every
    end = measure_to + 2 * len(STAGES) * max(SOAK, found.merge_every)
    merged: list[tuple[str, datetime]] = []  # every commit, in merge order, with its release
    arrived: dict[tuple[str, str], datetime] = {}  # (stage, commit) -> when Cascade saw it run
    changes: list[datetime] = []  # when the last stage changed, after the warm-up
    next_merge, wake = start, None
    while clock.now < end:
        clock.now = min(m for m in (next_merge, wake, end) if m is not None)
        if clock.now == next_merge:
            release = await sandbox.deploy(STAGES[0])
            merged.append((release["slug"]["commit"], clock.now))
            next_merge += found.merge_every
        await world.settle()
        outcome = await world.reconciler.reconcile("lt")
        wake = outcome.wake_at if outcome.wake_at and outcome.wake_at > clock.now else None
        if outcome.again:  # news came in while it ran: look again a moment later
            wake = clock.now + timedelta(seconds=1)
        for view in await world.reconciler.store.stages("lt", STAGES):
            commit = view.commit
            if commit is not None and (view.app, commit) not in arrived:
                arrived[view.app, commit] = clock.now
                if view.app == last and clock.now >= measure_from:
                    changes.append(clock.now)
    found.promotions = len(sandbox.world.promotions)
    # from the warm-up's end to the run's: a last stage that never changes has one long gap
    found.gaps = [(b - a).total_seconds() for a, b in pairwise([measure_from, *changes, end])]
    found.hops = _hops(arrived, found.soak)
    index = {commit: i for i, (commit, _) in enumerate(merged)}
    reached = sorted(
        (at, index[c]) for (app, c), at in arrived.items() if app == last and c in index
    )
    for i, (_, released) in enumerate(merged):
        if not measure_from <= released < measure_to:
            continue
        at = next((at for at, j in reached if j >= i), None)
        if at is None:
            found.starved += 1
        else:
            found.lead.append((at - released).total_seconds())
    return found


def _hops(arrived: dict[tuple[str, str], datetime], soak: timedelta) -> list[float]:
    """Per promotion, the time beyond the soak between the commit's arrival in the source
    and in the target."""
    hops = []
    for before, after in pairwise(STAGES):
        for (app, commit), at in arrived.items():
            if app == after and (before, commit) in arrived:
                hops.append((at - arrived[before, commit] - soak).total_seconds())
    return [h for h in hops if h >= 0]


async def _all(url: str, log: Callable[[str], None], ratios: tuple[float, ...]) -> list[Flow]:
    client = redis.Redis.from_url(url, decode_responses=True)
    flows = []
    try:
        for ratio in ratios:
            for strategy in ("proven", "current only"):
                with current_only() if strategy == "current only" else _nothing():
                    found = await flow(client, strategy, SOAK * ratio)
                flows.append(found)
                log(f"  M/A {ratio:g} {strategy}: {summary(found)}")
    finally:
        await client.aclose()
    return flows


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def summary(found: Flow) -> str:
    lead = f"lead p50 {median(found.lead) / 60:.1f} min" if found.lead else "no lead time"
    gap = f"gap max {max(found.gaps) / 60:.1f} min" if found.gaps else "no change"
    return (
        f"{lead} (min {found.minimum / 60:.1f}), {gap} (limit {found.starve_limit / 60:.1f}),"
        f" starved {found.starved}/{found.starved + len(found.lead)}, {found.promotions} POSTs"
    )


def run(log: Callable[[str], None], ratios: tuple[float, ...] = RATIOS) -> list[Flow]:
    with tempfile.TemporaryDirectory(prefix="cascade-leadtime-") as tmp:
        server = EmbeddedRedis(Path(tmp))
        server.start()
        try:
            return asyncio.run(_all(server.url, log, ratios))
        finally:
            server.stop()


def plot(flows: list[Flow], path: Path) -> None:
    """Lead time and the last stage's update interval against M/A, both strategies (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lead, gaps) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for strategy, style in (("proven", "o-"), ("current only", "s--")):
        mine = [f for f in flows if f.strategy == strategy]
        ratios = [f.ratio for f in mine]
        leads = [median(f.lead) / 60 if f.lead and not f.starved else float("nan") for f in mine]
        lead.plot(ratios, leads, style, label=f"{strategy}: median lead time")
        never = [f.ratio for f in mine if f.starved]
        if never:  # the last stage never got these commits: drawn at the top, crossed
            top = 2 * len(STAGES) * SOAK.total_seconds() / 60
            lead.plot(never, [top] * len(never), "x", ms=10, color="C1", label=f"{strategy}: never")
        worst = [max(f.gaps) / 60 if f.gaps else float("nan") for f in mine]
        gaps.plot(ratios, worst, style, label=f"{strategy}: longest gap")
    mine = [f for f in flows if f.strategy == "proven"]
    ratios = [f.ratio for f in mine]
    lead.plot(
        ratios, [f.minimum / 60 for f in mine], ":", color="grey", label="theoretical minimum"
    )
    gaps.plot(
        ratios,
        [f.starve_limit / 60 for f in mine],
        ":",
        color="grey",
        label="max(M, A) + a promotion",
    )
    lead.set(title="Lead time, first release to the last stage", ylabel="minutes")
    gaps.set(title="Last stage: time between two new commits", ylabel="minutes")
    for ax in (lead, gaps):
        ax.set_xscale("log", base=2)
        ax.minorticks_off()
        ax.set_xticks(RATIOS, [f"{r:g}" for r in RATIOS])
        ax.set(xlabel=f"merge interval M / soak A (A = {SOAK.seconds // 60} min)", ylim=(0, None))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
