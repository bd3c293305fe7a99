"""A delivery history written by hand, and its figures worked out by hand (`app.core.dora`).

Service "api", stages api-qa → api-st → api-prod; T is any moment, the window starts
a day before it. Times are minutes after T.

    commit  first ran on api-qa   into api-st         into api-prod
    c0      T-3d (before window)  T-2d (before)       T-2d+60 (before)
    c1      0                     30   (lead 1800 s)  60  (lead 3600 s)
    c2      60                    80   (lead 1200 s)  -
    c3      120                   170  (lead 3000 s)  240 (lead 7200 s), halted at 270
    c4      180                   190  (lead  600 s)  -
    c5      240                   300  (lead 3600 s)  390 (lead 9000 s)
    c6      (left the history)    420  (no lead)      -, halted on api-st at 430

Nearest rank: p = the ceil(q·n)-th smallest value.

- api-qa: 5 new commits in the window (c1..c5); lead 0; no halt: rate 0.
- api-st: 6 deployments; leads 600, 1200, 1800, 3000, 3600 (c6 has none):
  p50 = 3rd = 1800, p90 = ceil(4.5) = 5th = 3600; 1 halt (c6) ÷ 6 = 1/6, never
  restored (no later deployment): time to restore none, 1 open.
- api-prod: 3 deployments (c0 is before the window); leads 3600, 7200, 9000:
  p50 = ceil(1.5) = 2nd = 7200, p90 = ceil(2.7) = 3rd = 9000; 1 halt (c3) ÷ 3 = 1/3,
  restored by c5 at 390: 390 - 270 = 120 min = 7200 s.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.core.dora import StageFigures
from app.runtime import Runtime
from app.storage.audit import Event

SERVICE = "api"
STAGES = ("api-qa", "api-st", "api-prod")
COMMITS = {
    name: f"{index}" * 40 for index, name in enumerate(("c0", "c1", "c2", "c3", "c4", "c5", "c6"))
}


@dataclass(frozen=True)
class History:
    arrived: dict[str, datetime]  # commit -> first run on api-qa
    promoted: list[tuple[str, str, datetime]]  # (stage, commit, succeeded at)
    halted: list[tuple[str, str, datetime]]  # (stage, commit, halted at)
    since: datetime


def history(t: datetime) -> History:
    """The table above, with T = `t`."""

    def at(minutes: float) -> datetime:
        return t + timedelta(minutes=minutes)

    c = COMMITS
    day = 24 * 60
    arrived = {c["c0"]: at(-3 * day)} | {c[f"c{i}"]: at(60 * (i - 1)) for i in range(1, 6)}
    promoted = [
        ("api-st", c["c0"], at(-2 * day)),
        ("api-prod", c["c0"], at(-2 * day + 60)),
        ("api-st", c["c1"], at(30)),
        ("api-prod", c["c1"], at(60)),
        ("api-st", c["c2"], at(80)),
        ("api-st", c["c3"], at(170)),
        ("api-prod", c["c3"], at(240)),
        ("api-st", c["c4"], at(190)),
        ("api-st", c["c5"], at(300)),
        ("api-prod", c["c5"], at(390)),
        ("api-st", c["c6"], at(420)),
    ]
    halted = [("api-prod", c["c3"], at(270)), ("api-st", c["c6"], at(430))]
    return History(arrived, promoted, halted, since=at(-day))


EXPECTED = (
    StageFigures("api-qa", 5, 0.0, 0.0, 0, 0.0, None, 0),
    StageFigures("api-st", 6, 1800.0, 3600.0, 1, 1 / 6, None, 1),
    StageFigures("api-prod", 3, 7200.0, 9000.0, 1, 1 / 3, 7200.0, 0),
)


async def seed(runtime: Runtime, h: History) -> None:
    """Write `h` through Cascade's own modules: the first stage's history in the store, the
    promotions and halts as audit events (the halt in the auto-halt's event contract)."""
    places = {commit: index for index, commit in enumerate(h.arrived)}
    await runtime.store.add_history(SERVICE, STAGES[0], h.arrived, places)
    for stage, commit, at in h.promoted:
        await runtime.audit.record(
            Event(
                kind="promotion.succeeded",
                message=f"promotion of {commit[:7]} to {stage} succeeded",
                at=at,
                service=SERVICE,
                commit=commit,
                source=STAGES[STAGES.index(stage) - 1],
                target=stage,
            )
        )
    for stage, commit, at in h.halted:
        await runtime.audit.record(
            Event(
                kind="service.halted",
                service=SERVICE,
                commit=commit,
                target=stage,
                source=None,
                message="error rate over 5% after the promotion",
                at=at,
                details={
                    "signal": "alerts",
                    "promoted_at": (at - timedelta(minutes=5)).isoformat(),
                },
            )
        )
    await runtime.audit.drain()
