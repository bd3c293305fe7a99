"""The deterministic simulation's entry points: many seeds in `make test`, one with `--seed`.

A failing seed prints the seed and its trace; `pytest tests/simulation --seed N` replays it
exactly. The default run leaves out the step kinds of `faults.KNOWN_BROKEN`.
"""

import os
import re

import pytest

from tests.figures import Figure, record
from tests.simulation.faults import Enabled, known_broken_from_env
from tests.simulation.run import default_jobs, run_parallel, simulation_url
from tests.simulation.scheduler import Simulation

pytestmark = pytest.mark.reliability

SEEDS = int(os.environ.get("SIMULATION_SEEDS", "200"))  # `make test`: about two minutes
STEPS = 60


def option(request: pytest.FixtureRequest, name: str) -> object:
    try:
        return request.config.getoption(name)
    except ValueError:  # the suite run from the top: tests/simulation/conftest.py not initial
        return None


def test_seeds_keep_the_promise(redis_url: str, request: pytest.FixtureRequest) -> None:
    known_broken = bool(option(request, "--known-broken")) or known_broken_from_env()
    rows = tuple(option(request, "--row") or ())  # type: ignore[call-overload]
    enabled = Enabled.default(known_broken, rows)
    one = option(request, "--seed")
    first = int(option(request, "--first-seed") or 0)
    count = int(option(request, "--seeds") or SEEDS)
    steps = int(option(request, "--steps") or STEPS)
    seeds = [int(one)] if one is not None else list(range(first, first + count))
    jobs = int(option(request, "--jobs") or default_jobs())
    totals, failed = run_parallel(redis_url, seeds, enabled, steps, jobs)
    record(
        Figure(
            area="simulation",
            check="seeded simulation of the promotion lifecycle (tests/simulation)",
            cases=totals.seeds,
            faults=sum(totals.faults.values()),
            promotions=totals.promotions,
            duplicates=totals.duplicates,
            note=f"{totals.summary()}; faults by kind: {totals.kinds()}",
            details=totals.details(jobs),
        )
    )
    assert failed is None, failed.report()


async def test_a_seed_replays_exactly(redis_url: str) -> None:
    """The same seed takes the same steps with the same outcomes (ids Heroku makes aside)."""
    url, enabled = simulation_url(redis_url), Enabled.default(known_broken=True)
    first = await Simulation(7, url, enabled, steps=40).run()
    again = await Simulation(7, url, enabled, steps=40).run()
    assert first.steps == again.steps > 0
    assert masked(first.trace) == masked(again.trace)


def masked(trace: list[str]) -> list[str]:
    """The trace without the random ids of pipelines, apps and slugs in request paths."""
    return [re.sub(r"/[0-9a-f]{8}(?=[/ ]|$)", "/<id>", line) for line in trace]
