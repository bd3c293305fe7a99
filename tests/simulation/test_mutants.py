"""The simulation finds issue 15's fixed rows on its own: with a row's old defect put back
(`mutants`), a seed the search found breaks the promise; without it, the same seed keeps it.

The seeds came from `python -m tests.simulation.run --mutant N --row N --rounds 4 --seeds 100
--keep-going` (docs/simulation.md). Several rounds of faults, each until converged, are what
these defects need: a promotion must have settled before a fault can undo its record.
"""

import pytest

from tests.simulation.faults import Enabled
from tests.simulation.run import run_parallel

pytestmark = pytest.mark.reliability

ROUNDS = 4
STEPS = 60
FOUND = {5: 3}  # row -> a seed that finds its mutant, with the row's kinds drawn more often


@pytest.mark.parametrize(("row", "seed"), sorted(FOUND.items()), ids=lambda v: str(v))
def test_an_old_defect_put_back_is_found_and_the_fix_keeps_the_seed(
    redis_url: str, row: int, seed: int
) -> None:
    enabled = Enabled.default(only=(row,))
    _, broken = run_parallel(redis_url, [seed], enabled, STEPS, 1, mutant=row, rounds=ROUNDS)
    assert broken is not None, f"row {row}'s defect put back, and seed {seed} kept the promise"
    assert any("at most once" in v for v in broken.violations), broken.report(200)
    _, kept = run_parallel(redis_url, [seed], enabled, STEPS, 1, rounds=ROUNDS)
    assert kept is None, kept.report(200)
