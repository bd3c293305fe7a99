"""Running many seeds and adding up what they did: for the test, `make soak` and RELIABILITY.md.

`python -m tests.simulation.run --seeds 100000` (what `make soak` runs) starts its own Valkey,
runs the seeds in one process per CPU (each on a database of its own), and prints the
figures: seeds and steps simulated, faults injected by kind, promotions made, invariant
violations, convergence time p50/p99 in virtual time.
"""

import argparse
import asyncio
import logging
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.simulation import mutants
from tests.simulation.faults import Enabled
from tests.simulation.scheduler import Result, Simulation

DB = 9  # a database of its own on the session's server, flushed per seed (the first job's)
JOBS_MAX = 6  # databases 9 to 14: one per job
WORK = {"reconcile", "release_call", "deliver_webhook", "finish_release", "advance", "deploy"}


def simulation_url(url: str, job: int = 0) -> str:
    base, _, db = url.rpartition("/")
    return f"{base}/{DB + job}" if db.isdigit() else f"{url.rstrip('/')}/{DB + job}"


@dataclass
class Totals:
    seeds: int = 0
    steps: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    promotions: int = 0
    proven: int = 0  # promotions pinning an older release than the source's current
    shapes: Counter[str] = field(default_factory=Counter)  # seeds whose world had waves, Fir
    halts: int = 0  # commits Cascade halted by itself
    rollbacks: int = 0  # release rollbacks it asked for
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
        self.proven += result.proven
        self.shapes.update(result.shape)
        self.halts += result.halts
        self.rollbacks += result.rollbacks
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

    def merge(self, other: "Totals") -> None:
        """Add another job's totals (its seeds, run alongside these)."""
        self.seeds += other.seeds
        self.steps += other.steps
        self.faults.update(other.faults)
        self.promotions += other.promotions
        self.proven += other.proven
        self.shapes.update(other.shapes)
        self.halts += other.halts
        self.rollbacks += other.rollbacks
        self.violations += other.violations
        self.duplicates += other.duplicates
        self.converged += other.converged
        self.failing = sorted(self.failing + other.failing)
        self.last = other.last or self.last
        for promise, seeds in other.promises.items():
            self.promises[promise] = sorted({*self.promises.get(promise, []), *seeds})

    def percentile(self, p: float) -> str:
        if not self.converged:
            return "-"
        ordered = sorted(self.converged)
        value = ordered[min(len(ordered) - 1, int(p * len(ordered)))]
        return str(timedelta(seconds=round(value)))

    def summary(self) -> str:
        return (
            f"{self.seeds} seeds, {self.steps} steps, {self.promotions} promotions"
            f" ({self.proven} of a proven release), worlds with waves {self.shapes['waves']},"
            f" Fir {self.shapes['fir']}, {self.halts} halts, {self.rollbacks} rollbacks,"
            f" {self.violations} violations, convergence p50 {self.percentile(0.5)}"
            f" p99 {self.percentile(0.99)} (virtual), {time.monotonic() - self.started:.0f} s"
        )

    def details(self, jobs: int) -> dict[str, Any]:
        """The figures RELIABILITY.md shows of a run (`scripts/reliability.py`, `make soak`)."""
        return {
            "seeds": self.seeds,
            "steps": self.steps,
            "jobs": jobs,
            "seconds": round(time.monotonic() - self.started),
            "faults": dict(sorted(self.faults.items())),
            "promotions": self.promotions,
            "proven": self.proven,
            "shapes": dict(self.shapes),
            "halts": self.halts,
            "rollbacks": self.rollbacks,
            "violations": self.violations,
            "failing": self.failing[:20],
            "converged": len(self.converged),
            "p50": self.percentile(0.5),
            "p99": self.percentile(0.99),
        }

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
    url: str,
    seeds: list[int],
    enabled: Enabled,
    steps: int,
    totals: Totals,
    stop: bool = True,
    rounds: int = 1,
) -> Result | None:
    """Run the seeds; the first failing one's result (all are run when `stop` is False)."""
    first: Result | None = None
    for seed in seeds:
        result = await Simulation(seed, url, enabled, steps, rounds=rounds).run()
        totals.add(result)
        if result.violations and first is None:
            first = result
            if stop:
                return first
    return first


def _job(
    url: str,
    seeds: list[int],
    enabled: Enabled,
    steps: int,
    stop: bool,
    mutant: int | None,
    rounds: int,
) -> tuple[Totals, Result | None]:
    """One worker process's share of the seeds, on its own database."""
    logging.disable(logging.WARNING)  # a seed's story is its trace
    totals = Totals()
    with mutants.applied(mutant):
        failed = asyncio.run(run_seeds(url, seeds, enabled, steps, totals, stop, rounds))
    if totals.last is not None and totals.last is not failed:
        totals.last.trace = []  # only a failing seed's trace crosses back
    return totals, failed


def run_parallel(
    server_url: str,
    seeds: list[int],
    enabled: Enabled,
    steps: int,
    jobs: int,
    stop: bool = True,
    batch: int | None = None,
    progress: Callable[[Totals], None] = lambda totals: None,
    mutant: int | None = None,
    rounds: int = 1,
) -> tuple[Totals, Result | None]:
    """The seeds over `jobs` processes: the totals, and the lowest failing seed's result.

    Each job takes every `jobs`-th seed of a batch, so a run of N seeds covers the same seeds
    whatever the number of jobs, and a seed replays the same alone (`--seed N`). After each
    batch (`batch` seeds a job; all at once by default) `progress` is told the totals so far:
    a soak stopped halfway keeps the figures of the batches it finished. With `mutant`,
    row `mutant`'s old defect is put back in every job (`mutants`). Each seed runs
    `rounds` rounds of faulty steps, each followed by its quiet phase.
    """
    jobs = max(1, min(jobs, JOBS_MAX, len(seeds)))
    size = jobs * batch if batch else len(seeds)
    totals, failures = Totals(), []
    context = multiprocessing.get_context("spawn")  # no inherited event loop or sockets
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        for start in range(0, len(seeds), size):
            chunk = seeds[start : start + size]
            shares = [
                pool.submit(
                    _job,
                    simulation_url(server_url, i),
                    chunk[i::jobs],
                    enabled,
                    steps,
                    stop,
                    mutant,
                    rounds,
                )
                for i in range(jobs)
            ]
            for share in shares:
                done, failed = share.result()
                totals.merge(done)
                if failed is not None:
                    failures.append(failed)
            progress(totals)
            if failures and stop:
                break
    first = min(failures, key=lambda r: r.seed, default=None)
    return totals, first


def section(title: str, details: dict[str, Any], how: str) -> str:
    """A run's figures as a section of RELIABILITY.md."""
    faults = details["faults"]
    rows = "".join(f"| {kind} | {count} |\n" for kind, count in faults.items())
    failing = ", ".join(map(str, details["failing"])) or "none"
    return (
        f"## {title}\n\n{how}\n\n"
        f"- seeds simulated: {details['seeds']}, steps: {details['steps']}"
        f" ({details['jobs']} processes, {details['seconds']} s)\n"
        f"- promotions made: {details['promotions']} ({details.get('proven', 0)} of them of a"
        " proven release: older than what its source ran by then)\n"
        f"- worlds: {details.get('shapes', {}).get('waves', 0)} seeds with a wave of two apps"
        f" as the last stage, {details.get('shapes', {}).get('fir', 0)} of the Fir generation\n"
        f"- auto-halts: {details.get('halts', 0)}, release rollbacks:"
        f" {details.get('rollbacks', 0)}\n"
        f"- invariant violations (must be 0): **{details['violations']}**"
        f" (failing seeds: {failing})\n"
        f"- convergence after faults stop, virtual time: p50 {details['p50']},"
        f" p99 {details['p99']} ({details['converged']} seeds converged)\n\n"
        f"| fault injected | times |\n| --- | ---: |\n{rows}"
        f"| **total** | **{sum(faults.values())}** |\n"
    )


SOAK_TITLE = "The soak (`make soak`)"


def write_section(path: Path, title: str, text: str) -> None:
    """Put the section in the file, in place of the one of that title."""
    old = path.read_text() if path.exists() else ""
    head, found, rest = old.partition(f"\n## {title}\n")
    tail = rest[rest.find("\n## ") :] if found and "\n## " in rest else ""
    path.write_text(f"{head.rstrip()}\n\n{text.rstrip()}\n{tail}")


def default_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, JOBS_MAX))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.simulation.run")
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--known-broken", action="store_true")
    parser.add_argument(
        "--row", type=int, action="append", default=[], help="only this row's kinds"
    )
    parser.add_argument(
        "--mutant", type=int, choices=sorted(mutants.MUTANTS), help="put row N's old defect back"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds of faults, each until converged"
    )
    parser.add_argument("--keep-going", action="store_true")
    parser.add_argument("--trace", action="store_true", help="print the first failing trace")
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="processes (one a CPU)")
    parser.add_argument("--record", type=Path, help="write the figures to this file's soak section")
    parser.add_argument("--batch", type=int, default=250, help="seeds a job runs between reports")
    args = parser.parse_args(argv)
    from app.storage.embedded import EmbeddedRedis

    enabled = Enabled.default(args.known_broken, tuple(args.row))
    record: Path | None = args.record

    def progress(totals: Totals) -> None:
        print(totals.summary(), flush=True)
        if record is not None:
            last = args.first_seed + totals.seeds - 1
            how = (
                f"`make soak SEEDS={args.seeds} FIRST={args.first_seed}`: seeds"
                f" {args.first_seed} to {last} of the {args.seeds} asked, {args.steps} steps"
                " each, every step kind on."
            )
            details = totals.details(args.jobs)
            write_section(record, SOAK_TITLE, section(SOAK_TITLE, details, how))

    with tempfile.TemporaryDirectory() as scratch:
        server = EmbeddedRedis(Path(scratch))
        server.start()
        try:
            seeds = list(range(args.first_seed, args.first_seed + args.seeds))
            totals, failed = run_parallel(
                server.url,
                seeds,
                enabled,
                args.steps,
                args.jobs,
                not args.keep_going,
                args.batch,
                progress,
                args.mutant,
                args.rounds,
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
