"""The simulated Heroku of the simulation: the sandbox's `World` on a virtual clock, recorded.

`SimSandbox` is the sandbox (`app.sandbox.Sandbox`, served by its Platform API app) with
three changes that let a seeded scheduler drive it: time is the virtual clock, releases end
and webhooks leave only when the scheduler says so (nothing runs in the background), and a
promotion's slug copy can take a while (the target has no new release meanwhile, as on real
Heroku). It also keeps the truth the invariants judge by: the order in which commits were
made, which commits ran on which app, every promotion Cascade asked for and what the target
ran when it did, and when each release became known to Cascade.
"""

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.sandbox import IN_PROCESS_WEBHOOK_URL, Sandbox
from app.sandbox.bodies import promotion_json
from app.sandbox.hooks import WebhookSender, _Delivery, signed
from app.sandbox.resources import (
    App,
    Json,
    PromotionTarget,
    Release,
    ReleaseStatus,
    SandboxPipeline,
)

WEBHOOK_SECRET = "simulation-secret"
START = datetime.fromisoformat("2030-01-01T00:00:00+00:00")  # ahead of any real clock


class VirtualClock:
    """The one clock of a simulated run: it moves only when the scheduler advances it."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


@dataclass
class Webhook:
    """One captured webhook delivery: the scheduler delivers, delays, repeats or loses it."""

    delivery: _Delivery
    release: Release
    status: str  # the release's status when it was announced
    number: int

    def describe(self) -> str:
        r = self.release
        return f"webhook#{self.number} {r.app.name} v{r.version} {self.status}"


@dataclass
class Asked:
    """A promotion Cascade asked Heroku for, with what the target ran when Heroku got it."""

    step: int
    at: datetime
    source: str
    target: str
    commit: str
    replaced: Release | None  # the target's current release when the POST arrived
    landing: PromotionTarget  # its release appears on the target when the slug is copied
    op: object | None  # the scheduler's operation that sent it (decision bounds)
    proven: bool = False  # it pinned an older release than the source's current (`app.core.proven`)

    @property
    def release(self) -> Release | None:
        return self.landing.release

    @property
    def failed(self) -> bool:
        return self.landing.status == str(ReleaseStatus.FAILED)


@dataclass
class Truth:
    """What Heroku really did, kept by the world as it happens (never read from Cascade)."""

    order: dict[str, int] = field(default_factory=dict)  # commit -> when it was made
    # Git: commit -> its parent. The main line is made on the first stage; a commit made on
    # another stage (a hotfix) is a child of what that stage ran, off the main line.
    parents: dict[str, str | None] = field(default_factory=dict)
    tip: str | None = None  # the main line's newest commit
    ran: dict[str, set[str]] = field(default_factory=dict)  # app -> commits that ran there
    arrived: dict[tuple[str, str], datetime] = field(default_factory=dict)  # (app, commit)
    # ... and the creation time of the release that first ran it there, as Heroku stamps it
    stamped: dict[tuple[str, str], datetime] = field(default_factory=dict)
    current_since: dict[str, int] = field(default_factory=dict)  # release id -> step
    revealed: dict[str, int] = field(default_factory=dict)  # release id -> step Cascade knew
    asked: list[Asked] = field(default_factory=list)
    retried: dict[str, int] = field(default_factory=dict)  # target -> step of the last /retry
    # Cascade's release rollbacks (`POST /apps/{app}/releases`): (step, app, release id)
    rolled_back: list[tuple[int, str, str]] = field(default_factory=list)
    # When Redis lost data, and when an operator confirmed it (POST /recover): how many
    # promotions had been asked for by then (finer than a step, which holds several), and
    # how many losses and recoveries came before (`moment`).
    lost: list[tuple[int, int]] = field(default_factory=list)
    recovered: list[tuple[int, int]] = field(default_factory=list)

    def moment(self) -> tuple[int, int]:
        return len(self.asked), len(self.lost) + len(self.recovered)


class Outbox(WebhookSender):
    """The sandbox's webhook sender, holding every delivery for the scheduler to hand out."""

    def __init__(self, url: str, secret: str) -> None:
        super().__init__(url, secret, transport=None, retry_delays=())
        self.held: list[Webhook] = []
        self._numbered = 0

    def announce(self, action: str, release: Release, now: datetime) -> None:
        super().announce(action, release, now)
        while not self._outbox.empty():
            self._numbered += 1
            delivery = self._outbox.get_nowait()
            self.held.append(Webhook(delivery, release, str(release.status), self._numbered))

    def body(self, webhook: Webhook) -> tuple[bytes, dict[str, str]]:
        """The signed request Heroku would send (`WebhookSender._post`'s, without sending)."""
        return signed(webhook.delivery, f"attempt-{webhook.number}")


class SimSandbox(Sandbox):
    """The sandbox on the virtual clock, driven step by step, recording the truth."""

    def __init__(
        self,
        pipeline: SandboxPipeline,
        clock: VirtualClock,
        rng: random.Random,
        *,
        skew: Callable[[], timedelta] = lambda: timedelta(0),
    ) -> None:
        self.clock, self.rng, self.skew = clock, rng, skew
        self.truth = Truth()
        self.step = 0
        self.copy_window = False  # promotions' target releases appear only when copied
        self.copying: list[PromotionTarget] = []  # promotions whose slug is being copied
        self.copied_at: dict[PromotionTarget, datetime] = {}  # ... when each copy is done
        self.copy_succeeds: dict[PromotionTarget, bool] = {}
        self.unfinished: dict[Release, bool] = {}  # pending release -> will it succeed
        self.operation: Callable[[], object | None] = lambda: None  # who is calling
        super().__init__(
            (pipeline,), webhook_url=IN_PROCESS_WEBHOOK_URL, webhook_secret=WEBHOOK_SECRET
        )
        self.webhooks = Outbox(IN_PROCESS_WEBHOOK_URL, WEBHOOK_SECRET)
        self.rate.tokens = self.rate.size = 10**9  # the rate pool is a fault of its own
        first = self.new_commit()
        for app in self.apps:
            app.releases[0].slug.commit = first  # seeded, so a seed replays exactly
            self._became_current(app.releases[0])

    # clock and commits ---------------------------------------------------

    def _now(self) -> datetime:  # type: ignore[override]
        return self.clock() + self.skew()

    @property
    def apps(self) -> list[App]:
        return self.world.pipelines[0].apps

    def new_commit(self, on: App | None = None) -> str:
        """A new commit: on the main line, or a child of what `on` (a later stage) runs."""
        truth = self.truth
        commit = f"{len(truth.order):04d}" + "".join(
            self.rng.choice("0123456789abcdef") for _ in range(36)
        )
        truth.order[commit] = len(truth.order)
        if on is None or on is self.apps[0]:
            truth.parents[commit], truth.tip = truth.tip, commit
        else:
            truth.parents[commit] = on.current.slug.commit if on.current else truth.tip
        return commit

    # releases --------------------------------------------------------------

    def _release_started(self, release: Release, *, succeed: bool) -> None:
        self.webhooks.announce("create", release, self._now())
        self.unfinished[release] = succeed

    async def _copy_later(self, target: PromotionTarget, *, succeed: bool) -> None:
        """The sandbox's slug copy, on the scheduler's time: it lands when the scheduler says
        (`copied`) with the copy window on, else at once."""
        if not self.copy_window:
            self._release_started(self.world.land(target, self._now()), succeed=succeed)
            return
        self.copying.append(target)
        self.copy_succeeds[target] = succeed
        took = timedelta(seconds=self.rng.choice((5, 30, 60, 300)))
        self.copied_at[target] = self.clock() + took

    def copied(self, target: PromotionTarget) -> Release:
        """The slug copy is done: the target's release exists now, pending."""
        self.copying.remove(target)
        release = self.world.land(target, self._now())
        self._release_started(release, succeed=self.copy_succeeds.pop(target))
        return release

    def finish(self, release: Release) -> Release | None:
        """End a pending release as decided when it started; the release it replaced."""
        succeed = self.unfinished.pop(release)
        before = release.app.current
        self.world.finish(release, succeeded=succeed, now=self._now())
        self.webhooks.announce("update", release, self._now())
        if succeed and release.app.current is release:
            self._became_current(release)
            return before
        return None

    def _became_current(self, release: Release) -> None:
        app, commit = release.app.name, release.slug.commit
        self.truth.ran.setdefault(app, set()).add(commit)
        self.truth.arrived.setdefault((app, commit), self.clock())
        self.truth.stamped.setdefault((app, commit), release.created_at)
        self.truth.current_since[release.id] = self.step

    # the operator's and the developers' hands --------------------------------

    def deploy_commit(self, app: App, commit: str, *, succeed: bool = True) -> Release:
        release = self.world.deploy(app, commit, self._now())
        self._release_started(release, succeed=succeed)
        return release

    def manual_promotion(self, source: App, target: App) -> Release | None:
        """`heroku pipelines:promote` by a person: not Cascade's."""
        if source.current is None:
            return None
        body = {
            "pipeline": {"id": source.pipeline.id},
            "source": {"app": {"id": source.id}, "release": {"id": source.current.id}},
            "targets": [{"app": {"id": target.id}}],
        }
        promotion = self.world.promote(body, self._now())
        release = self.world.land(promotion.targets[0], self._now())  # a person waits for it
        self._release_started(release, succeed=True)
        return release

    def promote(self, body: object) -> Json:
        """Cascade's `POST /pipeline-promotions`: recorded with what the target ran."""
        before = {app.name: app.current for app in self.apps}
        answer = super().promote(body)
        promotion = self.world.promotions[-1]
        for target in promotion.targets:
            self.truth.asked.append(
                Asked(
                    step=self.step,
                    at=self.clock(),
                    source=promotion.source.app.name,
                    target=target.app.name,
                    commit=promotion.source.slug.commit,
                    replaced=before[target.app.name],
                    landing=target,
                    op=self.operation(),
                    proven=promotion.source is not before[promotion.source.app.name],
                )
            )
        return answer or promotion_json(promotion)

    def roll_back(self, app: str, body: object) -> Json:
        """Cascade's release rollback after an auto-halt: recorded with what it asked for."""
        answer = super().roll_back(app, body)
        wanted = body.get("release") if isinstance(body, dict) else None
        self.truth.rolled_back.append((self.step, app, str(wanted)))
        return answer

    def reveal(self, releases: list[Release]) -> None:
        """Cascade was told of these releases (a webhook taken in, a read answered)."""
        for release in releases:
            if release.status is ReleaseStatus.SUCCEEDED:
                self.truth.revealed.setdefault(release.id, self.step)

    def recreate_pipeline(self) -> None:
        """The pipeline deleted and made again with the same apps: new pipeline id."""
        from app.sandbox.resources import new_id

        pipeline = self.world.pipelines[0]
        pipeline.id = new_id()
        for app in pipeline.apps:
            app.coupling_id = new_id()


def releases_named(sandbox: SimSandbox, app_name: str) -> list[Release]:
    return next(a for a in sandbox.apps if a.name == app_name).releases


def newer(truth: Truth, a: str, b: str) -> bool:
    """Whether commit `b` is a strict ancestor of commit `a` (Git's "a contains b")."""
    parent = truth.parents.get(a)
    while parent is not None:
        if parent == b:
            return True
        parent = truth.parents.get(parent)
    return False


def pipeline_spec(stages: int, *, fir: bool = False) -> SandboxPipeline:
    """`stages` apps (up to 4); `fir`: of the Fir generation (OCI images, no slugs)."""
    names = ("dev", "stg", "prod", "prod2")[:stages]
    kinds = ("development", "staging", "production", "production")
    apps = tuple((f"sim-{n}", k) for n, k in zip(names, kinds, strict=False))
    return SandboxPipeline("sim", apps, fir)


def is_pending(release: Release) -> bool:
    return release.status is ReleaseStatus.PENDING


AGE_SLACK = timedelta(0)
