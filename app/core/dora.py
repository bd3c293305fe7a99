"""Delivery metrics (DORA) from Cascade's own records: records in, figures out, nothing else.

`app.storage.dora_record` keeps and reads the records; `/dora`, `/metrics`, the dashboard and
`cascade dora` show what `figures` computes. Definitions (docs/dora.md):

- deployments: promotions that succeeded into the stage; on the first stage, which no
  promotion feeds, the commits that first ran there (its history).
- lead time: from a commit's first run on the first stage to its promotion succeeding on
  the stage (p50, p90, nearest rank); 0 on the first stage.
- change failure rate: auto-halts on the stage ÷ its deployments.
- time to restore: from a halt to the stage's next deployment of another commit (median
  over the halts restored; the others are counted as open).
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Mark:
    """A commit reaching (deployed) or halted on a stage, at a moment."""

    commit: str
    at: datetime


@dataclass(frozen=True)
class StageRecord:
    app: str
    deployed: tuple[Mark, ...]  # the first stage: the commits that first ran there
    halted: tuple[Mark, ...]


@dataclass(frozen=True)
class ServiceRecord:
    service: str
    stages: tuple[StageRecord, ...]  # in promotion order
    arrived: Mapping[str, datetime]  # commit -> its first run on the first stage


@dataclass(frozen=True)
class StageFigures:
    stage: str
    deployments: int
    lead_time_p50: float | None  # seconds; None without a deployment of known arrival
    lead_time_p90: float | None
    halts: int
    change_failure_rate: float | None  # None without a deployment
    time_to_restore: float | None  # seconds, the median over the halts restored
    open_halts: int  # halts not followed by a deployment of another commit yet


def quantile(values: Sequence[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least `q` of the values at or below it
    (simple to check by hand, always a value that happened)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def figures(record: ServiceRecord, since: datetime) -> tuple[StageFigures, ...]:
    """Each stage's figures over the marks at or after `since`."""
    return tuple(
        _stage(stage, record.arrived, since, first=index == 0)
        for index, stage in enumerate(record.stages)
    )


def _stage(
    stage: StageRecord, arrived: Mapping[str, datetime], since: datetime, first: bool
) -> StageFigures:
    deployed = sorted((m for m in stage.deployed if m.at >= since), key=lambda m: m.at)
    halted = [m for m in stage.halted if m.at >= since]
    leads = [0.0 if first else _lead(m, arrived) for m in deployed]
    known = [lead for lead in leads if lead is not None]
    restores = [_restore(halt, deployed) for halt in halted]
    restored = [r for r in restores if r is not None]
    return StageFigures(
        stage=stage.app,
        deployments=len(deployed),
        lead_time_p50=quantile(known, 0.5),
        lead_time_p90=quantile(known, 0.9),
        halts=len(halted),
        change_failure_rate=len(halted) / len(deployed) if deployed else None,
        time_to_restore=quantile(restored, 0.5),
        open_halts=len(restores) - len(restored),
    )


def _lead(mark: Mark, arrived: Mapping[str, datetime]) -> float | None:
    """None when the commit left the first stage's history (its newest 200 commits)."""
    first = arrived.get(mark.commit)
    return None if first is None else max(0.0, (mark.at - first).total_seconds())


def _restore(halt: Mark, deployed: Sequence[Mark]) -> float | None:
    """Cascade promotes forwards only, so the next other commit deployed is a newer one."""
    after = (m for m in deployed if m.at > halt.at and m.commit != halt.commit)
    fixed = next(after, None)
    return None if fixed is None else (fixed.at - halt.at).total_seconds()
