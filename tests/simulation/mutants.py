"""Old defects put back, to show the simulation finds them on its own.

Issue 15's rows 3 and 5 were fixed in the ledger. Each mutant here restores one of those
defects, the way the code before the fix had it, and nothing else. `--mutant N` runs the
simulation with row N's mutant in place. A seed that reports the broken promise shows
that the simulation catches the defect; `test_mutants.py` replays those seeds. A mutant
is applied in the process that runs the seeds, for as long as the seeds run.
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from unittest import mock

from app.core.models import PromotionRecord
from app.storage import keys, ledger

THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000


async def _plain_drop(self: ledger.Ledger, seen: PromotionRecord) -> bool:
    """Row 3 as it was: `Ledger.drop` was a plain DEL, whatever the record held by then."""
    key = keys.promotion(seen.service, seen.target, seen.commit)
    async with self.redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        pipe.srem(keys.promotions(seen.service), key)
        pipe.zrem(keys.settled(seen.service, seen.target), key)
        await pipe.execute()
    return True


@contextmanager
def _row_3() -> Iterator[None]:
    with mock.patch.object(ledger.Ledger, "drop", _plain_drop):
        yield


# Row 5 as it was: a settled record was written with a 30-day expiry.
_SETTLED_EXPIRE = ledger._SWAP.replace(
    "  redis.call('set', KEYS[1], new)\n",
    "  if state == 'succeeded' or state == 'failed' then\n"
    f"    redis.call('set', KEYS[1], new, 'px', {THIRTY_DAYS_MS})\n"
    "  else redis.call('set', KEYS[1], new) end\n",
)


@contextmanager
def _row_5() -> Iterator[None]:
    assert _SETTLED_EXPIRE != ledger._SWAP, "the swap script changed: update the mutant"
    with mock.patch.object(ledger, "_SWAP", _SETTLED_EXPIRE):
        yield


MUTANTS: dict[int, Callable[[], AbstractContextManager[None]]] = {3: _row_3, 5: _row_5}


@contextmanager
def applied(row: int | None) -> Iterator[None]:
    """Row `row`'s old defect in place for the block (nothing for None)."""
    if row is None:
        yield
        return
    with MUTANTS[row]():
        yield
