"""Instructions per delivery, this tree against another: `python -m bench.instructions OTHER`.

On this shared machine CPU time drifts by a quarter within minutes, so a change worth 5 %
hides in the noise of `bench.compare`. The count of instructions does not drift: valgrind
(cachegrind) counts the same run alike to within about 2 %. Each tree's Cascade runs in
one process (`bench/deliver.py`: no uvicorn, no wrk) on a freshly seeded intake fleet;
signed deliveries go through its ASGI app eight at a time and the reconciles they ask for
run as they would. A short run's count is taken from a long one's, so start-up cancels
out. Needs valgrind (`apt-get install valgrind`); OTHER is a copy of the tree before a
change (`mkdir OTHER && git archive REV | tar -x -C OTHER`).
"""

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from bench import fleet as fleets
from bench import payloads, procs
from bench.intake import FLEET, KINDS
from tests.inprocess import clean_environment

WARM_UP = 300  # deliveries of the short run: caches filled, the first reconciles done
DRIVER = Path(__file__).with_name("deliver.py")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("other", type=Path, nargs="?", help="a tree before the change")
    parser.add_argument("--kind", choices=[k.sender for k in KINDS], default="heroku")
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    clean_environment()
    trees = [("this", Path.cwd())] + ([("other", args.other.resolve())] if args.other else [])
    counted: dict[str, list[float]] = {name: [] for name, _ in trees}
    for round_ in range(1, args.rounds + 1):
        for name, tree in trees:
            short = _count(tree, args.kind, WARM_UP)
            long = _count(tree, args.kind, WARM_UP + args.deliveries)
            counted[name].append((long - short) / args.deliveries)
            print(f"round {round_} {name}: {counted[name][-1] / 1e6:.3f} M instructions/delivery")
    if args.other:
        this, other = min(counted["this"]), min(counted["other"])
        print(f"other / this: {other / this:.2f} (> 1: this runs fewer instructions)")


def _count(tree: Path, kind: str, deliveries: int) -> int:
    """Instructions of one run of `deliveries` by `tree`'s Cascade, start-up included."""
    chosen = next(k for k in KINDS if k.sender == kind)
    with fleets.seeded("instructions", FLEET) as seeded:
        template = (seeded.tmp / chosen.template).read_text()
        apps = [line.split() for line in seeded.apps.read_text().splitlines()]
        with (seeded.tmp / "deliveries").open("wb") as out:
            for n in range(deliveries):
                body, headers = payloads.signed(kind, template, apps, n, procs.SECRET)
                out.write(repr((body, headers)).encode() + b"\n")
        env = {
            **os.environ,
            "PYTHONPATH": str(tree),  # the tree's `app`, and nothing of this `bench`
            "REDIS_URL": seeded.redis_url,
            "HEROKU_API_KEY": "bench",
            "HEROKU_API_URL": seeded.peer.url,
            "HEROKU_WEBHOOK_SECRET": procs.SECRET,
            "GITHUB_WEBHOOK_SECRET": procs.SECRET,
            "GITHUB_API_URL": "http://127.0.0.1:9",  # a reconcile's GitHub reads stay in Redis
            "CASCADE_CONFIG": str(seeded.config),
            "CASCADE_DATA_DIR": str(seeded.tmp / "data"),
            "CASCADE_TICK_SECONDS": "3600",
            "CASCADE_RESYNC_SECONDS": "3600",
            "CASCADE_RELOAD_SECONDS": "0",
            "CASCADE_LOG_FORMAT": "json",
        }
        argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no"]
        argv += ["--cachegrind-out-file=/dev/null", sys.executable, "-P", str(DRIVER)]
        argv += [chosen.path, str(seeded.tmp / "deliveries")]
        done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{tree}: the run under valgrind failed:\n{done.stderr[-3000:]}")
    return int(found.group(1).replace(",", ""))


if __name__ == "__main__":
    main()
