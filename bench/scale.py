"""4. Scale of a reconcile: plan + gates CPU from a warm view, and a full tick with Redis.

One fleet of 10,000 services x 10 stages, seeded warm (`bench/fleet.py`: every adjacent
pair differs, so every gate of every pair is evaluated), Cascade in this process
against the peer. For each size (the first 10, 1,000 and 10,000 services) and in two
interleaved rounds: the CPU time of `plan()` over snapshots already read (median of
5 passes), and the wall time of a tick over those services (enqueue them all, wait
until the queue is empty), with the process's CPU time during it.
"""

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.core.models import Snapshot
from app.core.plan import plan
from app.runtime import Runtime
from bench import fleet as fleets
from bench import procs

SIZES = (10, 1_000, 10_000)
PASSES = 5


@dataclass
class Line:
    services: int
    round: int
    plan_ms: float  # CPU
    tick_s: float  # wall
    tick_cpu_s: float
    pairs: int


@dataclass
class Scale:
    lines: list[Line] = field(default_factory=list)
    startup_s: float = 0.0
    calls_during_ticks: int = 0


def run(log: Callable[[str], None] = print, sizes: tuple[int, ...] = SIZES) -> Scale:
    return procs.run_loop(_run(log, sizes))


async def _run(log: Callable[[str], None], sizes: tuple[int, ...]) -> Scale:
    found = Scale()
    fleet = fleets.Fleet(max(sizes), 10)
    with procs.scratch("scale") as tmp, procs.valkey(tmp) as redis:
        config = fleet.write(tmp / "cascade.toml")
        peer = procs.peer(config, tmp, unlimited=True)
        with procs.running(peer):
            state = procs.get(peer, "/_sandbox/state").json()
            fleets.seed(redis.url, fleet, state, 3600, procs.get(peer, "/_bench/slugs").json())
            del state
            started = time.monotonic()
            platform = {"heroku_api_key": "bench", "heroku_api_url": peer.url}
            async with procs.in_process(
                redis.url, config, tmp, resync_seconds=3600, **platform
            ) as runtime:
                found.startup_s = time.monotonic() - started
                log(f"  scale: {fleet.services} services started warm in {found.startup_s:.1f} s")
                snapshots = await _snapshots(runtime)
                # The benchmark keeps every snapshot alive throughout, which Cascade never
                # does (a reconcile holds one): out of the collector's full passes, as
                # Cascade's own start-up objects are (app.main), so a pass measures the
                # plan's own work and garbage rather than a walk over 10,000 snapshots.
                gc.freeze()
                calls = sum(runtime.heroku.calls.values())
                for round_ in (1, 2):
                    for size in sizes:
                        line = await _measure(runtime, snapshots[:size], round_)
                        found.lines.append(line)
                        log(
                            f"  scale {size} services round {round_}: plan {line.plan_ms:.1f} ms"
                            f" CPU, tick {line.tick_s:.3f} s ({line.tick_cpu_s:.3f} s CPU)"
                        )
                found.calls_during_ticks = sum(runtime.heroku.calls.values()) - calls
    return found


async def _snapshots(runtime: Runtime) -> list[Snapshot]:
    reconciler = runtime.reconciler
    found = []
    for service in runtime.catalog.services:
        topology = reconciler.topologies.known[service.name]
        freezes = runtime.catalog.freezes
        read = await reconciler.snapshots.read(service, topology, freezes, fetch=True)
        found.append(read[0])
    return found


async def _measure(runtime: Runtime, snapshots: list[Snapshot], round_: int) -> Line:
    passes = []
    pairs = 0
    for _ in range(PASSES):
        cpu = time.process_time()
        plans = [plan(snapshot) for snapshot in snapshots]
        passes.append(time.process_time() - cpu)
        pairs = sum(len(p.candidates) for p in plans)
    names = [snapshot.service.name for snapshot in snapshots]
    cpu, wall = time.process_time(), time.perf_counter()
    for name in names:
        runtime.queue.enqueue(name)
    await runtime.queue.join()
    tick, tick_cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Line(len(snapshots), round_, statistics.median(passes) * 1000, tick, tick_cpu, pairs)
