"""Domain values shared by the pure core (gates, plan) and the adapters around it.

Everything here is frozen: a reconcile reads the world once into a `Snapshot`,
decides from it, and never mutates it. The values the plan builds for every pair of
every service (`Pair`, `GateResult`, `Candidate`) have `Final` fields instead of
`frozen=True`: mypy refuses any assignment just the same, and they are built in half
the time (a frozen dataclass sets each field through `object.__setattr__`).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from itertools import pairwise
from typing import Final, NamedTuple

from app.config.services import Service
from app.signals.alerts.facts import AlertsFacts
from app.signals.freezes.facts import FreezeWindow
from app.signals.github.facts import GitHubFacts
from app.signals.incidents.facts import IncidentsFacts
from app.signals.urls.facts import UrlCheck


class GateState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    UNKNOWN = "unknown"


@dataclass  # no slots: `/status` reads it with `vars()`
class GateResult:
    name: Final[str]
    state: Final[GateState]
    reason: Final[str]
    opens_at: Final[datetime | None] = None  # when it opens by itself, if it knows
    recheck_at: Final[datetime | None] = None  # when a fresh look at its signal may change it


class ReleaseStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"


class ArtifactKind(StrEnum):
    """What a release runs, as a release's `artifacts[].type` names it."""

    SLUG = "slug"  # Cedar
    OCI_IMAGE = "oci-image"  # Fir: the release's `slug` is null


class Artifact(NamedTuple):
    """A release's build, immutable: the commit it was built from is cached
    (`app.storage.store`)."""

    kind: ArtifactKind
    id: str


@dataclass(frozen=True)
class Release:
    """One Heroku release of one app, with the commit its build (slug or OCI image) came from."""

    id: str
    app: str
    version: int
    status: ReleaseStatus
    commit: str | None
    created_at: datetime
    app_id: str | None = None
    slug_id: str | None = None
    oci_image_id: str | None = None  # a Fir release's build (stages stored before: None)
    rollback_of: int | None = None  # the version a rollback release brought back (`app.core.order`)

    @property
    def artifact(self) -> Artifact | None:
        """The build it runs, whose commit never changes; None: none known."""
        if self.slug_id:
            return Artifact(ArtifactKind.SLUG, self.slug_id)
        if self.oci_image_id:
            return Artifact(ArtifactKind.OCI_IMAGE, self.oci_image_id)
        return None


@dataclass(frozen=True)
class StageView:
    """What one stage app runs: its current succeeded release and a newer pending one."""

    app: str
    release: Release | None = None
    pending: Release | None = None

    @cached_property  # read for both pairs a stage is in, and by the age gate
    def commit(self) -> str | None:
        return self.release.commit if self.release else None


def pause_scope(service: str | None) -> str:
    """What a pause holds, in words: one service, or everything."""
    return f"service {service}" if service else "everything"


@dataclass(frozen=True)
class Pause:
    reason: str
    created_at: datetime
    by: str | None = None
    until: datetime | None = None
    service: str | None = None

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until


class PromotionState(StrEnum):
    CLAIMED = "claimed"  # decided; the POST may or may not have been sent
    PROMOTING = "promoting"  # Heroku accepted it and gave an id
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def settled(self) -> bool:
        return self in (PromotionState.SUCCEEDED, PromotionState.FAILED)


@dataclass(frozen=True)
class PromotionRecord:
    """The one record per (service, target, commit) that makes a promotion happen at most once."""

    service: str
    source: str
    target: str
    commit: str
    release_id: str
    state: PromotionState
    claimed_at: datetime
    updated_at: datetime
    promotion_id: str | None = None
    error: str | None = None
    by: str | None = None
    # False from the claim until just before the POST: a claim its process left unsent is
    # taken back and decided afresh. True for records written before the field existed.
    sent: bool = True
    # Made by the claimer: every later write compares the record as its writer saw it, token
    # included, so a stalled writer never changes (or deletes) the next holder's record.
    token: str = ""
    # The target's release the decision saw (None: none): the POST goes only over it.
    over: str | None = None


@dataclass(slots=True)
class Pair:
    """Two adjacent stages: `source` may hand its commit on to `target`."""

    index: Final[int]
    source: Final[StageView]
    target: Final[StageView]


@dataclass(frozen=True)
class Signals:
    """One service's signals at snapshot time; an empty value means "not gathered"."""

    github: Mapping[tuple[str, str], GitHubFacts] = field(default_factory=dict)
    """Keyed by (source commit, target commit) of each pair whose commits differ."""
    alerts: AlertsFacts | None = None  # None: the service lists no alerts
    incidents: IncidentsFacts | None = None  # None: no status source applies to the service
    urls: tuple[UrlCheck, ...] = ()  # one per configured URL
    freezes: tuple[FreezeWindow, ...] = ()  # the freeze windows in force for the service now


@dataclass(frozen=True)
class Snapshot:
    """Everything one decision about one service may look at, read once, `now` stamped."""

    service: Service
    now: datetime
    stages: tuple[StageView, ...]
    history: Mapping[str, Mapping[str, datetime]] = field(default_factory=dict)  # for age
    # app -> commit -> its position in the app's release order (`app.core.order`): newer, older
    positions: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    global_pause: Pause | None = None
    service_pause: Pause | None = None
    promotions: Mapping[tuple[str, str], PromotionRecord] = field(default_factory=dict)
    # target app -> its unsettled promotion record, whatever its commit: one at a time
    in_flight: Mapping[str, PromotionRecord] = field(default_factory=dict)
    problem: str | None = None  # why the pipeline could not be read, if it could not
    signals: Signals = field(default_factory=Signals)
    # source app -> the newest release there whose commit ran the next stage's `min_age`, when
    # that is not the commit it runs now (`app.core.proven`)
    proven: Mapping[str, Release] = field(default_factory=dict)
    # source app -> when its next commit will have run the next stage's `min_age`: a wake-up
    proves_at: Mapping[str, datetime] = field(default_factory=dict)
    container_stack: frozenset[str] = frozenset()  # stage apps Heroku cannot promote to or from
    suspects: Mapping[str, str] = field(default_factory=dict)  # commit -> why (`app.core.halt`)

    def pairs(self) -> tuple[Pair, ...]:
        """Each stage with the one before it; with waves (`Service.waves`), each app of a wave
        with the first app of the wave before (a wave moves on only once all of it runs one
        commit, `app.core.plan`), the pair's index that wave's."""
        stages = self.stages
        if not self.service.waves:
            return tuple(map(Pair, range(len(stages) - 1), stages, stages[1:]))
        waves = self.waves()
        return tuple(
            Pair(index, before[0], target)
            for index, (before, after) in enumerate(pairwise(waves))
            for target in after
        )

    def waves(self) -> tuple[tuple[StageView, ...], ...]:
        """The stages, grouped in the service's waves (each stage alone without any)."""
        return grouped(self.service, self.stages)

    def before(self, pair: Pair) -> tuple[StageView, ...]:
        """Every stage ahead of the pair's source wave (`app.core.order` reads their histories)."""
        if not self.service.waves:
            return self.stages[: pair.index]
        return tuple(stage for wave in self.waves()[: pair.index] for stage in wave)

    def arrived(self, app: str, commit: str) -> datetime | None:
        """When `commit` first ran (succeeded) on `app`, if Cascade knows."""
        history = self.history.get(app)
        return history.get(commit) if history is not None else None


def grouped(service: Service, stages: tuple[StageView, ...]) -> tuple[tuple[StageView, ...], ...]:
    """`stages` in the service's waves, in order; each alone when it has none. An app of a wave
    missing from `stages` is left out (the pipeline's problem says so)."""
    if not service.waves:
        return tuple((stage,) for stage in stages)
    by_app = {stage.app: stage for stage in stages}
    waves = (tuple(by_app[app] for app in wave if app in by_app) for wave in service.waves)
    return tuple(wave for wave in waves if wave)


def adjacent(service: Service, stages: tuple[StageView, ...]) -> list[tuple[StageView, StageView]]:
    """The (source, target) pairs of `Snapshot.pairs`, for readers that have no snapshot yet."""
    waves = grouped(service, stages)
    return [(before[0], target) for before, after in pairwise(waves) for target in after]


class PairState(StrEnum):
    READY = "ready"  # every gate open: promote now
    WAITING = "waiting"  # closed, but every closed gate knows when it opens
    BLOCKED = "blocked"
    PROMOTING = "promoting"
    FAILED = "failed"


@dataclass(slots=True)
class Candidate:
    """A pair whose commits differ, and what the gates say about moving it."""

    pair: Final[Pair]
    commit: Final[str | None]  # None when the source's commit is not known
    state: Final[PairState]
    gates: Final[tuple[GateResult, ...]]
    reason: Final[str]
    opens_at: Final[datetime | None] = None
    # An older release of the source whose commit proved itself there, moving in place of
    # the source's current one, still too young (`app.core.proven`)
    proven: Final[Release | None] = None

    @property
    def release(self) -> Release | None:
        """The source release the POST pins: the one the source runs, or the proven one."""
        return self.proven or self.pair.source.release

    @property
    def over(self) -> Release | None:
        """The target release the decision saw: the POST goes only while it still runs."""
        return self.pair.target.release


@dataclass(frozen=True)
class Plan:
    service: str
    candidates: tuple[Candidate, ...]
    wake_at: datetime | None  # when to look again without any outside news

    @property
    def ready(self) -> tuple[Candidate, ...]:
        return tuple(c for c in self.candidates if c.state is PairState.READY)
