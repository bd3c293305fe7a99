"""`python -m bench` (`make bench`): run every benchmark and rewrite BENCHMARKS.md.

Takes about twelve minutes on two cores. `--quick` runs each benchmark briefly (a smoke
test of the benchmarks themselves; its figures mean little) and writes to
`--output` (default: BENCHMARKS.md). `--profile` also samples the Cascade worker under
the intake load with py-spy (the `bench` extra) and adds what it saw. `--only leadtime`
runs the lead-time benchmark alone (a minute) and replaces its section of `--output`.
"""

import argparse
import pickle
import sys
import tempfile
import time
from pathlib import Path

from bench import economy, intake, latency, leadtime, memory, procs, report, scale
from tests.inprocess import clean_environment

SAVED = Path(tempfile.gettempdir()) / "cascade-bench-last.pickle"


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short run of everything")
    parser.add_argument("--profile", action="store_true", help="py-spy the intake load too")
    parser.add_argument("--output", type=Path, default=procs.ROOT / "BENCHMARKS.md")
    parser.add_argument("--render", type=Path, help="only render a saved run (its pickle)")
    parser.add_argument("--only", choices=["leadtime"], help="run one benchmark, splice it in")
    args = parser.parse_args()
    if args.only:
        run = report.Run.start(quick=args.quick)
        run.leadtime = leadtime.run(log=log)
        rows, text = report.leadtime_section(run)
        args.output.write_text(report.splice(args.output.read_text(), rows, text, 6))
        log(f"bench: section 6 of {args.output} written")
        return 0
    if args.render:
        with args.render.open("rb") as saved:
            args.output.write_text(report.render(pickle.load(saved)))  # noqa: S301 - our own file
        return 0
    clean_environment()
    procs.ensure_wrk()
    run = report.Run.start(quick=args.quick)
    log("bench 1/6: signal to promotion")
    run.latency = latency.run(trials=12 if args.quick else 200, log=log)
    log("bench 2/6: Platform API economy")
    run.economy = economy.run(log=log)
    log("bench 3/6: webhook intake")
    run.intake = intake.run(seconds=2 if args.quick else 4, rounds=2, log=log)
    log("bench 4/6: scale of a reconcile")
    run.scale = scale.run(log=log, sizes=(10, 100, 1_000) if args.quick else scale.SIZES)
    log("bench 5/6: memory")
    run.memory = memory.run(log=log, deliveries=5_000 if args.quick else memory.DELIVERIES)
    log("bench 6/6: lead time under continuous merges")
    run.leadtime = leadtime.run(log=log, ratios=(0.25, 1.0) if args.quick else leadtime.RATIOS)
    if args.profile:
        log("bench: profiling the intake load with py-spy")
        run.profile = intake.profiled(seconds=8, log=log)
    run.finish()
    with SAVED.open("wb") as out:  # to render again without running again
        pickle.dump(run, out)
    args.output.write_text(report.render(run))
    log(f"bench: {args.output} written ({time.strftime('%H:%M:%S')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
