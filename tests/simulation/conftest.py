"""Options of the simulation: `pytest tests/simulation --seed N` replays one seed.

`--seeds N` runs N seeds (from `--first-seed`), `--known-broken` turns on the step kinds of
every row in `faults.KNOWN_BROKEN` (SIMULATION_KNOWN_BROKEN=1 does too), `--steps` sets the
steps per seed, `--jobs` the processes they run in, `--row R` (repeatable) the safe kinds
plus row R's, drawn more often: the run that found a row, replayed.
"""

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("simulation")
    group.addoption("--seed", type=int, default=None, help="replay one simulation seed")
    group.addoption("--seeds", type=int, default=None, help="how many simulation seeds")
    group.addoption("--first-seed", type=int, default=0, help="the first simulation seed")
    group.addoption("--steps", type=int, default=None, help="simulation steps per seed")
    group.addoption("--jobs", type=int, default=None, help="processes (default: one a CPU)")
    group.addoption(
        "--known-broken", action="store_true", help="simulate the known broken rows too"
    )
    group.addoption(
        "--row", type=int, action="append", default=[], help="a known broken row's kinds only"
    )
