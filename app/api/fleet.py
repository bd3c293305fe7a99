"""What the fleet table at `/` says of each service: one status, worst first, and its columns.

Pure: derived from the `/status` objects alone, so the table, its summary and `/status`
never disagree (a browser test recounts them from `/status` with these rules).
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from operator import attrgetter

from app.api.schemas import PauseOut, PromotionOut, ServiceOut
from app.config.durations import short

GOLDEN_ANGLE = 137.50776  # degrees: consecutive values land far apart on the colour wheel


class Kind(StrEnum):
    """A service's status, worst first: the first that applies is the one shown."""

    FAILED = "failed"
    PAUSED = "paused"
    BLOCKED = "blocked"
    MOVING = "moving"
    WAITING = "waiting"
    SYNCED = "synced"


NEEDS_ME = frozenset({Kind.FAILED, Kind.PAUSED, Kind.BLOCKED})  # a person must act or decide
ICONS = {  # a state is told by an icon and a word, never by colour alone
    Kind.FAILED: "✕",
    Kind.PAUSED: "‖",
    Kind.BLOCKED: "⊘",
    Kind.MOVING: "⇢",
    Kind.WAITING: "◷",
    Kind.SYNCED: "✓",
}
LABELS = {kind: "up to date" if kind is Kind.SYNCED else kind.value for kind in Kind}
MOVES = {  # a promotion's state (SPEC) as the colour family it is drawn in
    "promoting": Kind.MOVING,
    "waiting": Kind.WAITING,
    "blocked": Kind.BLOCKED,
    "failed": Kind.FAILED,
}


@dataclass(frozen=True)
class Status:
    """One service's status: the kind, a short line for the table, and the whole reason."""

    kind: Kind
    text: str
    why: str = ""
    opens_at: datetime | None = None  # a timed wait: the line ends with a countdown to it


def status(service: ServiceOut, everything: PauseOut | None) -> Status:
    """The worst thing true of `service`; `everything` is the global pause, if any."""
    moves = service.promotions
    if service.problem:
        return Status(Kind.FAILED, "cannot read the pipeline", service.problem)
    if failed := _first(moves, "failed"):
        return Status(Kind.FAILED, f"into {failed.to}", failed.reason)
    if pause := service.paused or everything:
        scope = "" if service.paused else "everything: "
        return Status(Kind.PAUSED, f"{scope}{pause.reason}", pause.reason)
    if blocked := _first(moves, "blocked"):
        gates = [g.name for g in blocked.gates if g.state != "open"]
        named = f"by {', '.join(gates)} " if gates else ""
        return Status(Kind.BLOCKED, f"{named}into {blocked.to}", blocked.reason)
    if moving := _first(moves, "promoting"):
        return Status(Kind.MOVING, f"{short(moving.commit)} → {moving.to}", moving.reason)
    waits = [p for p in moves if p.state == "waiting"]
    timed = sorted((p for p in waits if p.opens_at is not None), key=attrgetter("opens_at"))
    if timed:  # the soonest: that is when the table next changes
        return Status(Kind.WAITING, "opens in", timed[0].reason, timed[0].opens_at)
    if waits:  # every gate open: the promotion is about to start
        ready = waits[0]
        return Status(Kind.WAITING, f"{short(ready.commit)} → {ready.to} now", ready.reason)
    return Status(Kind.SYNCED, "")


def _first(moves: Sequence[PromotionOut], state: str) -> PromotionOut | None:
    return next((p for p in moves if p.state == state), None)


def counts(statuses: Sequence[Status]) -> dict[Kind, int]:
    """How many services are in each status, every status listed (zeros too), worst first."""
    return {kind: sum(s.kind is kind for s in statuses) for kind in Kind}


def hue(commit: str | None) -> int:
    """A commit's colour: a hash of the whole sha, spread by the golden angle, so two
    different commits seldom get neighbouring hues (commits sharing a prefix included)."""
    if not commit:
        return 0
    n = int.from_bytes(hashlib.sha256(commit.encode()).digest()[:4], "big")
    return round(n * GOLDEN_ANGLE) % 360


def columns(stages: Sequence[Sequence[str]]) -> list[str]:
    """Headings of the stage positions (promotion order), from each service's apps: a stage
    name when every app there ends the same (`api-prod`, `web-prod`: "prod"), else `stage N`.
    A cell whose app does not end as its heading says its app's name."""
    width = max((len(apps) for apps in stages), default=0)
    found = []
    for index in range(width):
        ends = {ending(apps[index]) for apps in stages if index < len(apps)}
        found.append(ends.pop() if len(ends) == 1 else f"stage {index + 1}")
    return found


def ending(app: str) -> str:
    """What an app's name says of its stage: `api-prod` is "prod"."""
    return app.rsplit("-", 1)[-1]
