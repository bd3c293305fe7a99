"""The sandbox platform's simulated Heroku: pipelines, apps, releases, builds and promotions.

A build is a slug on a Cedar pipeline, an OCI image on a Fir one (`SandboxPipeline.fir`),
and shows as neither on an app of the container stack, which Heroku refuses to promote.

`app.sandbox` serves this world over the Platform API and sends its webhooks; this module
only holds the state, changes it, and renders it in the shapes of Heroku's JSON schema
(`heroku-platform-api-schema.json`). Every change is handed `now`: the world never reads
the clock, so the timing lives in one place (the sandbox's background tasks).
"""

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

Json = dict[str, Any]

COUPLING_STAGES = ("development", "staging", "production")
ACCOUNT: Json = {"id": "5a1d6c3e-0000-4000-8000-5a4db0c5a1d6", "email": "sandbox@example.com"}
STACK: Json = {"id": "ee582d3c-717d-4a57-ba5f-8b3a39f3a817", "name": "heroku-24"}
REGION: Json = {"id": "59accabd-516d-4f0e-83e6-6e3757701145", "name": "us"}
GENERATION: Json = {"id": "7a1f9a6e-0000-4000-8000-00000000ced4", "name": "cedar"}
FIR: Json = {"id": "7a1f9a6e-0000-4000-8000-0000000000f1", "name": "fir"}
CNB_STACK: Json = {"id": "ba46bf09-7bd1-42fd-90df-a1a9a93eb4a2", "name": "cnb"}  # Fir's
CONTAINER_STACK: Json = {"id": "7a1f9a6e-0000-4000-8000-00000000d0c4", "name": "container"}
CONTAINER_REFUSED = "Pipeline promotions are not supported for apps using the container stack."
INITIAL_AGE = timedelta(hours=2)  # v1 ran long before start: nothing is young at start
WEBHOOK_LEVELS = ("notify", "sync")
WEBHOOK_FIELDS = ("authorization", "include", "level", "secret", "url")


class PlatformError(Exception):
    """A refused Platform API call, answered with Heroku's `{id, message}` body."""

    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_id, self.message = status, error_id, message


def not_found(what: str) -> PlatformError:
    return PlatformError(404, "not_found", f"Couldn't find that {what}.")


def invalid(message: str) -> PlatformError:
    return PlatformError(422, "invalid_params", message)


def iso(moment: datetime) -> str:
    """Heroku's timestamp form: UTC, whole seconds, `Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    return str(uuid.uuid4())


def new_commit() -> str:
    return secrets.token_hex(20)


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class ReleaseStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class SandboxPipeline:
    """A pipeline to simulate: its name and (app name, coupling stage) pairs in order."""

    name: str
    apps: tuple[tuple[str, str], ...]
    fir: bool = False  # Fir generation: releases run OCI images, no slug
    container: frozenset[str] = frozenset()  # its apps on the container stack (Docker deploys)


@dataclass(eq=False)
class Slug:
    """A build: served as a slug, or as an OCI image on a Fir pipeline (same id)."""

    commit: str
    created_at: datetime
    id: str = field(default_factory=new_id)


@dataclass(eq=False)
class Pipeline:
    name: str
    created_at: datetime
    id: str = field(default_factory=new_id)
    apps: list["App"] = field(default_factory=list)
    fir: bool = False


@dataclass(eq=False)
class App:
    name: str
    stage: str
    pipeline: Pipeline
    created_at: datetime
    id: str = field(default_factory=new_id)
    coupling_id: str = field(default_factory=new_id)
    webhook_id: str = field(default_factory=new_id)  # its first api:release subscription
    host_suffix: str = field(default_factory=lambda: secrets.token_hex(6))
    releases: list["Release"] = field(default_factory=list)  # ascending by version
    webhooks: list["AppWebhook"] = field(default_factory=list)  # its webhook subscriptions
    container: bool = False  # on the container stack: its builds show as neither kind

    @property
    def build_kind(self) -> str | None:
        """How its releases name their build: "slug", "oci-image", or None (container)."""
        if self.container:
            return None
        return "oci-image" if self.pipeline.fir else "slug"

    @property
    def current(self) -> "Release | None":
        """What runs: the newest succeeded release (a failed or pending one changes nothing)."""
        done = [r for r in self.releases if r.status is ReleaseStatus.SUCCEEDED]
        return done[-1] if done else None


@dataclass(eq=False)
class AppWebhook:
    """A webhook subscription: where an app's events go, and the secret that signs them."""

    app: App
    url: str
    include: list[str]
    level: str
    secret: str
    created_at: datetime
    updated_at: datetime
    authorization: str | None = None
    id: str = field(default_factory=new_id)


@dataclass(eq=False)
class Release:
    app: App
    version: int
    slug: Slug
    description: str
    created_at: datetime
    updated_at: datetime
    status: ReleaseStatus = ReleaseStatus.PENDING
    target: "PromotionTarget | None" = None  # set when a promotion made it
    id: str = field(default_factory=new_id)

    @property
    def current(self) -> bool:
        return self.app.current is self


@dataclass(eq=False)
class PromotionTarget:
    """One app a promotion copies the slug to: no release until the copy is done."""

    app: App
    promotion: "Promotion"
    release: Release | None = None  # made when the slug has been copied (`World.land`)
    error_message: str | None = None
    id: str = field(default_factory=new_id)

    @property
    def status(self) -> str:
        return str(self.release.status) if self.release else str(ReleaseStatus.PENDING)


@dataclass(eq=False)
class Promotion:
    pipeline: Pipeline
    source: Release
    request: Json  # the POST body as received, for /_sandbox/promotions
    created_at: datetime
    updated_at: datetime
    targets: list[PromotionTarget] = field(default_factory=list)
    id: str = field(default_factory=new_id)

    @property
    def status(self) -> str:
        done = all(t.status != ReleaseStatus.PENDING for t in self.targets)
        return "completed" if done else "pending"


class World:
    """Every pipeline, app, release and promotion the sandbox knows, kept in memory."""

    def __init__(self, pipelines: Sequence[SandboxPipeline], now: datetime) -> None:
        self.pipelines: list[Pipeline] = []
        self.promotions: list[Promotion] = []
        born, released = now - timedelta(days=30), now - INITIAL_AGE
        for spec in pipelines:
            pipeline = Pipeline(spec.name, born, fir=spec.fir)
            if is_uuid(spec.name):  # a config naming the pipeline by id finds it by id
                pipeline.id, pipeline.name = spec.name, f"pipeline-{spec.name[:8]}"
            slug = Slug(new_commit(), released)
            for name, stage in spec.apps:
                app = App(name, stage, pipeline, born, container=name in spec.container)
                source = pipeline.apps[0].name if pipeline.apps else None
                text = f"Promote {source} v1 {slug.commit[:8]}" if source else None
                release = self._add_release(
                    app, slug, text or f"Deploy {slug.commit[:8]}", released
                )
                release.status = ReleaseStatus.SUCCEEDED
                pipeline.apps.append(app)
            self.pipelines.append(pipeline)

    @property
    def apps(self) -> list[App]:
        return [app for pipeline in self.pipelines for app in pipeline.apps]

    def pipeline(self, ident: str, *, by_name: bool = True) -> Pipeline:
        for p in self.pipelines:
            if p.id == ident or (by_name and p.name == ident):
                return p
        raise not_found("pipeline")

    def app(self, ident: str, *, by_name: bool = True) -> App:
        for a in self.apps:
            if a.id == ident or (by_name and a.name == ident):
                return a
        raise not_found("app")

    def release(self, app: App, ident: str) -> Release:
        """By id or by version, as `release/identity` allows."""
        for r in app.releases:
            if r.id == ident or str(r.version) == ident:
                return r
        raise not_found("release")

    def slug(self, app: App, ident: str, kind: str = "slug") -> Slug:
        """A build of the app by id, as what the app's releases call it (`App.build_kind`)."""
        for r in app.releases:
            if r.slug.id == ident and app.build_kind == kind:
                return r.slug
        raise not_found("slug" if kind == "slug" else "OCI image")

    def promotion(self, ident: str) -> Promotion:
        for p in self.promotions:
            if p.id == ident:
                return p
        raise not_found("pipeline promotion")

    def webhook(self, app: App, ident: str) -> AppWebhook:
        for hook in app.webhooks:
            if hook.id == ident:
                return hook
        raise not_found("app webhook")

    def add_webhook(self, app: App, body: object, now: datetime) -> AppWebhook:
        """`POST /apps/{app}/webhooks`: include, level and url required; no secret: one is made."""
        fields = _webhook_fields(body, required=("include", "level", "url"))
        self._unique_url(app, fields["url"], None)
        hook = AppWebhook(
            app,
            url=fields["url"],
            include=fields["include"],
            level=fields["level"],
            secret=fields.get("secret") or secrets.token_hex(32),
            authorization=fields.get("authorization"),
            created_at=now,
            updated_at=now,
        )
        app.webhooks.append(hook)
        return hook

    def update_webhook(self, hook: AppWebhook, body: object, now: datetime) -> None:
        """`PATCH`: changes the fields it names; a null secret keeps the old one."""
        fields = _webhook_fields(body, required=())
        if "url" in fields:
            self._unique_url(hook.app, fields["url"], hook)
        for name, value in fields.items():
            if value is not None or name == "authorization":
                setattr(hook, name, value)
        hook.updated_at = now

    def _unique_url(self, app: App, url: str, hook: AppWebhook | None) -> None:
        """One subscription per URL and app, as Heroku answers `Url has already been taken`."""
        if any(other.url == url and other is not hook for other in app.webhooks):
            raise invalid("Url has already been taken")

    def deploy(self, app: App, commit: str, now: datetime) -> Release:
        """A build of `commit` released on `app`: a new slug, pending."""
        return self._add_release(app, Slug(commit, now), f"Deploy {commit[:8]}", now)

    def rollback(self, app: App, version: int, now: datetime) -> Release:
        """Heroku's rollback: a new release of the old release's slug, pending."""
        old = self.release(app, str(version))
        return self._add_release(app, old.slug, f"Rollback to v{version}", now)

    def rollback_to(self, app: App, body: object, now: datetime) -> Release:
        """The Platform API's release Rollback: `{"release": <id or version>}` released again."""
        ident = _ref(body, "release")
        if ident is None:
            raise invalid("release is required: the id of the release to roll back to.")
        return self.rollback(app, self.release(app, ident).version, now)

    def finish(self, release: Release, *, succeeded: bool, now: datetime) -> None:
        """Release phase over: the release (and the promotion target it serves) ends."""
        release.status = ReleaseStatus.SUCCEEDED if succeeded else ReleaseStatus.FAILED
        release.updated_at = now
        if (target := release.target) is not None:
            if not succeeded:
                target.error_message = f"Release v{release.version} of {target.app.name} failed"
            target.promotion.updated_at = now

    def promote(self, body: object, now: datetime) -> Promotion:
        """Validate a `POST /pipeline-promotions` body and start the promotion it asks for.

        As on Heroku, a target has no release while the slug is copied: `land` makes it.
        """
        if not isinstance(body, dict):
            raise invalid("Request body must be a JSON object.")
        pipeline_id = _ref(body, "pipeline", "id")
        source_id = _ref(body, "source", "app", "id")
        targets = body.get("targets")
        if pipeline_id is None or source_id is None or not isinstance(targets, list) or not targets:
            raise invalid("pipeline.id, source.app.id and at least one targets[].app.id required.")
        pipeline = self.pipeline(pipeline_id, by_name=False)
        source_app = self.app(source_id, by_name=False)
        if source_app.pipeline is not pipeline:
            raise invalid(f"App {source_app.name} is not coupled to pipeline {pipeline.name}.")
        release_id = _ref(body, "source", "release", "id")
        source = self.release(source_app, release_id) if release_id else source_app.current
        if source is None or source.status is not ReleaseStatus.SUCCEEDED:
            raise invalid(f"Only a succeeded release of {source_app.name} can be promoted.")
        if source_app.container:
            raise invalid(CONTAINER_REFUSED)
        apps: list[App] = []
        for target in targets:
            target_id = _ref(target, "app", "id")
            if target_id is None:
                raise invalid("Every target needs app.id.")
            app = self.app(target_id, by_name=False)
            if app.pipeline is not pipeline or app is source_app or app in apps:
                raise invalid(f"App {app.name} is not a promotion target in {pipeline.name}.")
            if app.container:
                raise invalid(CONTAINER_REFUSED)
            apps.append(app)
        promotion = Promotion(pipeline, source, body, now, now)
        promotion.targets.extend(PromotionTarget(app, promotion) for app in apps)
        self.promotions.append(promotion)
        return promotion

    def land(self, target: PromotionTarget, now: datetime) -> Release:
        """The slug is copied: the target's release appears, pending."""
        source = target.promotion.source
        text = f"Promote {source.app.name} v{source.version} {source.slug.commit[:8]}"
        release = self._add_release(target.app, source.slug, text, now)
        release.target, target.release = target, release
        target.promotion.updated_at = now
        return release

    def _add_release(self, app: App, slug: Slug, description: str, now: datetime) -> Release:
        version = app.releases[-1].version + 1 if app.releases else 1
        release = Release(app, version, slug, description, now, now)
        app.releases.append(release)
        return release


def _webhook_fields(body: object, required: Sequence[str]) -> Json:
    """The schema's app-webhook create/update body, checked as Heroku checks it (422)."""
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object.")
    if unknown := [k for k in body if k not in WEBHOOK_FIELDS]:
        raise invalid(f"Unknown field {unknown[0]}.")
    if missing := [k for k in required if body.get(k) is None]:
        raise invalid(f"Missing required params: {', '.join(missing)}.")
    include = body.get("include")
    if "include" in body and not (
        isinstance(include, list) and include and all(isinstance(i, str) and i for i in include)
    ):
        raise invalid("include must be a list of entities such as api:release.")
    if "level" in body and body["level"] not in WEBHOOK_LEVELS:
        raise invalid("level must be notify or sync.")
    url = body.get("url")
    if "url" in body and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise invalid("url must be an http or https URL.")
    for name in ("secret", "authorization"):
        if body.get(name) is not None and not isinstance(body[name], str):
            raise invalid(f"{name} must be a string or null.")
    return dict(body)


def _ref(body: object, *keys: str) -> str | None:
    """`body[k1][k2]...` when it is a non-empty string, else None."""
    for key in keys:
        body = body.get(key) if isinstance(body, dict) else None
    return body if isinstance(body, str) and body else None
