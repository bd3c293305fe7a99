"""The sandbox platform's simulated Heroku: every pipeline, app, release and promotion.

A build is a slug on a Cedar pipeline, an OCI image on a Fir one (`SandboxPipeline.fir`),
and shows as neither on an app of the container stack, which Heroku refuses to promote.

`app.sandbox` serves this world over the Platform API and sends its webhooks; this module
only holds the state (the records of `app.sandbox.resources`) and changes it, refusing as
Heroku refuses; `app.sandbox.bodies` renders it in the shapes of Heroku's JSON schema. Every
change is handed `now`: the world never reads the clock, so the timing lives in one place
(the sandbox's background tasks).
"""

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from app.sandbox.resources import (
    App,
    AppWebhook,
    Json,
    Pipeline,
    Promotion,
    PromotionTarget,
    Release,
    ReleaseStatus,
    SandboxPipeline,
    Slug,
    invalid,
    is_uuid,
    new_commit,
    not_found,
)

CONTAINER_REFUSED = "Pipeline promotions are not supported for apps using the container stack."
INITIAL_AGE = timedelta(hours=2)  # v1 ran long before start: nothing is young at start
WEBHOOK_LEVELS = ("notify", "sync")
WEBHOOK_FIELDS = ("authorization", "include", "level", "secret", "url")


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
