"""Before/after of a change, side by side: `python -m bench.compare OTHER_TREE`.

Runs the intake load (Heroku deliveries, 8 connections, one worker) against Cascade
from this tree and from OTHER_TREE (a copy of `app/` from before a change, e.g.
`mkdir /tmp/before && cp -r app /tmp/before/`), alternating them round by round on one
Valkey and one peer, and prints each round's ratio. This is how the changes noted in
BENCHMARKS.md were measured.
"""

import argparse
from pathlib import Path

from bench import fleet as fleets
from bench import latency, procs
from bench.intake import FLEET, KINDS, _wrk
from bench.stats import median, percentile


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("other", type=Path, help="a tree holding the other app/ package")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kind", choices=[k.sender for k in KINDS], default="heroku")
    parser.add_argument("--services", type=int, default=FLEET.services)
    parser.add_argument(
        "--latency", type=int, metavar="TRIALS", help="compare signal → promotion instead"
    )
    args = parser.parse_args()
    if args.latency:
        _latency(args.other.resolve(), args.latency, args.rounds)
        return
    fleet = fleets.Fleet(args.services, FLEET.stages, repo=FLEET.repo)
    kind = next(k for k in KINDS if k.sender == args.kind)
    with fleets.seeded("compare", fleet) as seeded:
        tmp, config, peer, apps = seeded.tmp, seeded.config, seeded.peer, seeded.apps
        this = procs.cascade(config, seeded.redis_url, peer, tmp, name="this")
        other = procs.cascade(
            config, seeded.redis_url, peer, tmp, name="other", tree=args.other.resolve()
        )
        with procs.running(this, other):
            procs.wait_quiet(this, peer)
            procs.wait_quiet(other, peer)
            ratios: list[float] = []
            cpu: list[float] = []
            offset = 0
            for round_ in range(1, args.rounds + 1):
                rates: dict[str, float] = {}
                costs: dict[str, float] = {}
                order = [("this", this), ("other", other)]
                for name, process in order if round_ % 2 else reversed(order):
                    offset += 10_000_000
                    result = _wrk(process, kind, tmp, apps, args.seconds, offset)
                    rates[name] = result.rate
                    costs[name] = result.server_us
                    print(
                        f"round {round_} {name}: {result.rate:,.0f}/s"
                        f" p50 {result.p50_ms:.2f} ms p99 {result.p99_ms:.2f} ms"
                        f" errors {result.errors} CPU {result.server_us:.0f} µs/delivery"
                    )
                ratios.append(rates["this"] / rates["other"])
                cpu.append(costs["other"] / costs["this"])
                print(f"round {round_}: rate this / other = {ratios[-1]:.2f}", end="")
                print(f", CPU per delivery other / this = {cpu[-1]:.2f}")
            print(f"median rate this / other: {median(ratios):.2f} over {len(ratios)} rounds")
            print(f"median CPU other / this: {median(cpu):.2f} (> 1: this is cheaper)")


def _latency(other: Path, trials: int, rounds: int) -> None:
    """Signal → promotion, p50 per scenario, alternating the two trees run by run."""
    p50s: dict[str, dict[str, list[float]]] = {"this": {}, "other": {}}
    for round_ in range(1, rounds + 1):
        order = [("this", procs.ROOT), ("other", other)]
        for name, tree in order if round_ % 2 else reversed(order):
            found = latency.run(trials=trials, tree=tree, log=lambda _: None)
            for key, results in found.trials.items():
                p50 = percentile([ms for _, ms in results], 50)
                p50s[name].setdefault(key, []).append(p50)
                print(f"round {round_} {name} {key}: p50 {p50:.2f} ms")
    for key in p50s["this"]:
        ratio = median(p50s["other"][key]) / median(p50s["this"][key])
        print(f"{key}: p50 other / this = {ratio:.2f} (> 1: this is sooner)")


if __name__ == "__main__":
    main()
