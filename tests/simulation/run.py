"""Running many seeds and adding up what they did: for the test, `make soak` and RELIABILITY.md.

`python -m tests.simulation.run --seeds 100000` (what `make soak` runs) starts its own Valkey,
runs the seeds, and prints the figures: seeds and steps simulated, faults injected by kind,
promotions made, invariant violations, convergence time p50/p99 in virtual time.
"""

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from tests.simulation.faults import Enabled
from tests.simulation.scheduler import Result, Simulation

DB = 9  # a database of its own on the session's server, flushed per seed
WORK = {"reconcile", "release_call", "deliver_webhook", "finish_release", "advance", "deploy"}


def simulation_url(url: str) -> str:
    base, _, db = url.rpartition("/")
    return f"{base}/{DB}" if db.isdigit() else f"{url.rstrip('/')}/{DB}"


@dataclass
class Totals:
    seeds: int = 0
    steps: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    promotions: int = 0
    violations: int = 0
    duplicates: int = 0
    converged: list[float] = field(default_factory=list)  # virtual seconds
    failing: list[int] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    last: Result | None = None
    promises: dict[str, list[int]] = field(default_factory=dict)  # promise broken -> seeds

    def add(self, result: Result) -> None:
        self.seeds += 1
        self.last = result
        self.steps += result.steps
        self.faults.update({k: n for k, n in result.kinds.items() if k not in WORK})
        self.faults.update(result.modes)
        self.promotions += result.promotions
        self.violations += len(result.violations)
        self.duplicates += sum("at most once" in v for v in result.violations)
        if result.converged_after is not None:
            self.converged.append(result.converged_after.total_seconds())
        if result.violations:
            self.failing.append(result.seed)
        for violation in result.violations:
            promise = violation.split(": ", 2)[1] if violation.count(": ") >= 2 else violation
            seeds = self.promises.setdefault(promise, [])
            if result.seed not in seeds:
                seeds.append(result.seed)

    def percentile(self, p: float) -> str:
        if not self.converged:
            return "-"
        ordered = sorted(self.converged)
        value = ordered[min(len(ordered) - 1, int(p * len(ordered)))]
        return str(timedelta(seconds=round(value)))

    def summary(self) -> str:
        return (
            f"{self.seeds} seeds, {self.steps} steps, {self.promotions} promotions,"
            f" {self.violations} violations, convergence p50 {self.percentile(0.5)}"
            f" p99 {self.percentile(0.99)} (virtual), {time.monotonic() - self.started:.0f} s"
        )

    def kinds(self) -> str:
        return ", ".join(f"{k} {n}" for k, n in sorted(self.faults.items())) or "none"

    def text(self) -> str:
        faults = self.kinds()
        failing = ", ".join(map(str, self.failing[:20])) or "none"
        broken = "".join(
            f"\n  {promise}: seeds {', '.join(map(str, seeds[:10]))}"
            for promise, seeds in sorted(self.promises.items())
        )
        return (
            f"{self.summary()}\nfaults injected by kind: {faults}\nfailing seeds: {failing}"
            f"\npromises broken:{broken or ' none'}"
        )


async def run_seeds(
    url: str, seeds: list[int], enabled: Enabled, steps: int, totals: Totals, stop: bool = True
) -> Result | None:
    """Run the seeds; the first failing one's result (all are run when `stop` is False)."""
    first: Result | None = None
    for seed in seeds:
        result = await Simulation(seed, url, enabled, steps).run()
        totals.add(result)
        if result.violations and first is None:
            first = result
            if stop:
                return first
    return first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.simulation.run")
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--known-broken", action="store_true")
    parser.add_argument(
        "--row", type=int, action="append", default=[], help="only this row's kinds"
    )
    parser.add_argument("--keep-going", action="store_true")
    parser.add_argument("--trace", action="store_true", help="print the first failing trace")
    args = parser.parse_args(argv)
    from app.redis_server import EmbeddedRedis

    enabled = Enabled.default(args.known_broken, tuple(args.row))
    with tempfile.TemporaryDirectory() as scratch:
        server = EmbeddedRedis(Path(scratch))
        server.start()
        try:
            totals = Totals()
            seeds = list(range(args.first_seed, args.first_seed + args.seeds))
            failed = asyncio.run(
                run_seeds(
                    simulation_url(server.url),
                    seeds,
                    enabled,
                    args.steps,
                    totals,
                    not args.keep_going,
                )
            )
        finally:
            server.stop()
    print(totals.text())
    shown = failed or totals.last
    if shown is not None and args.trace:
        print(shown.report())
    return 1 if totals.violations else 0


if __name__ == "__main__":
    sys.exit(main())
