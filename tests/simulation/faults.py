"""The kinds of step the scheduler may take, and which of them today's code is known to fail.

Each kind is a world event or a fault. `KNOWN_BROKEN` maps a row of issue 15's table (and
any defect found since, under a new number) to why; `ROW_KINDS` says which kinds provoke
it. A default run leaves those kinds out, so it passes on today's code and still checks
everything else; `--known-broken` (or SIMULATION_KNOWN_BROKEN=1) turns them all on. Delete
an entry once its fix is merged: its kinds then run in every `make test`.
"""

import os
from dataclasses import dataclass

# Empty: every row of issue 15 (and row 10, found by the simulation) is fixed, each with an
# example test that failed before its fix, and every kind runs in every `make test`.
KNOWN_BROKEN: dict[int, str] = {}

# Which step kinds provoke which row: left out of a default run while the row is listed.
ROW_KINDS: dict[int, tuple[str, ...]] = {
    1: ("hotfix", "manual_promotion"),
    2: ("rollback", "late_webhook", "long_history"),
    3: ("stall",),
    4: ("copy_window",),
    5: ("time_jump",),
    6: ("failed_release", "failed_promotion"),
    7: ("recreate_pipeline",),
    8: ("redis_flush", "redis_rewind", "recover"),
    9: ("clock_skew",),
    10: ("pause_mid_reconcile",),
}

# What else a row needs to show (kinds of other rows), when a run asks for that row only.
ROW_NEEDS: dict[int, tuple[str, ...]] = {
    3: ("failed_promotion",),  # a record deleted under a failed promotion: it goes again
    5: ("rollback", "failed_promotion"),
}
FOCUS = 5  # a run asking for rows draws their kinds this much more often

# Every kind, with its weight when the scheduler draws the next step.
WEIGHTS: dict[str, int] = {
    # the work itself
    "reconcile": 30,
    "release_call": 40,
    "deliver_webhook": 20,
    "finish_release": 12,
    "advance": 10,
    # world events
    "deploy": 6,
    "hotfix": 2,
    "manual_promotion": 2,
    "rollback": 2,
    "failed_release": 2,
    "pause": 2,
    "unpause": 3,
    "timed_pause": 2,
    "retry": 1,
    "recover": 3,
    "alert_fires": 2,  # the service's alert starts firing: an auto-halt after a promotion
    "alert_resolves": 3,
    # faults
    "lose_webhook": 2,
    "duplicate_webhook": 2,
    "late_webhook": 2,
    "reorder_webhooks": 2,
    "http_429": 2,
    "http_5xx": 2,
    "http_5xx_after": 1,
    "kill": 1,
    "stall": 2,
    "redis_flush": 1,
    "redis_rewind": 1,
    "copy_window": 0,  # a mode drawn per seed, not a step
    "time_jump": 1,
    "failed_promotion": 1,
    "recreate_pipeline": 1,
    "clock_skew": 0,  # a mode drawn per seed, not a step
    "long_history": 0,  # a mode drawn per seed, not a step
    "pause_mid_reconcile": 0,  # a way of judging (see `Judge.pause_from_start`), not a step
}
MODES = ("copy_window", "clock_skew", "long_history")
# The kinds that move the lifecycle on; every other kind's weight is scaled by the seed's
# fault rate, drawn from `RATES`. At the full rate a round rarely sees a promotion through
# (a data loss, a hotfix or a pause closes the pipeline long before); at the lower rates
# faults land in the middle of promotions: a stall between a claim and its POST.
WORK = ("reconcile", "release_call", "deliver_webhook", "finish_release", "advance", "deploy")
RATES = (1.0, 0.3, 0.1)


@dataclass(frozen=True)
class Enabled:
    """The step kinds a run may take."""

    kinds: frozenset[str]
    focus: frozenset[str] = frozenset()  # drawn `FOCUS` times as often; modes always on

    @classmethod
    def default(cls, known_broken: bool = False, only: tuple[int, ...] = ()) -> "Enabled":
        """Everything but the known broken rows' kinds; all with `known_broken`; with `only`,
        the safe kinds plus those of the rows named."""
        off = {k for row in KNOWN_BROKEN for k in ROW_KINDS.get(row, ())}
        focus = {k for row in only for k in (*ROW_KINDS.get(row, ()), *ROW_NEEDS.get(row, ()))}
        if known_broken:
            off = set()
        elif only:
            off -= focus
        return cls(frozenset(k for k in WEIGHTS if k not in off), frozenset(focus))

    def weight(self, kind: str, rate: float = 1.0) -> float:
        """How often `kind` is drawn, its weight scaled by the fault rate unless it is work."""
        scaled = WEIGHTS[kind] * (FOCUS if kind in self.focus else 1)
        return scaled if kind in WORK else scaled * rate

    def row_of(self, kind: str) -> int | None:
        return next((row for row, kinds in ROW_KINDS.items() if kind in kinds), None)


def known_broken_from_env() -> bool:
    return os.environ.get("SIMULATION_KNOWN_BROKEN", "") not in ("", "0")
