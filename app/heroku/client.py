"""The only door to the Heroku Platform API (v3): its endpoints, as Cascade uses them.

The reconciler builds its snapshot from `latest_releases` (one call per pipeline, commits
resolved through the cache of immutable builds) and acts through `create_promotion`, then follows
`promotion_targets`. Each call goes through `app.heroku.transport` (retries that never repeat a
promotion, pacing); bodies are read by `app.heroku.schema`; failures are the types of
`app.heroku.errors`, importable from here too. `app.heroku.subscriptions` keeps the app webhook
subscriptions through the `webhooks` calls.
"""

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, Unpack

from app.core.models import Artifact, ArtifactKind, Release, ReleaseStatus
from app.heroku import schema
from app.heroku.errors import HerokuError, NotFound, OutcomeUnknown, PromotionRefused
from app.heroku.schema import AppWebhook, Coupling, Pipeline, PromotionTarget
from app.heroku.transport import CallObserver, Options, Transport, shaped

__all__ = [
    "AppWebhook",
    "CallObserver",
    "CommitCache",
    "Coupling",
    "HerokuClient",
    "HerokuError",
    "NotFound",
    "OutcomeUnknown",
    "Pipeline",
    "PromotionRefused",
    "PromotionTarget",
]

PAGE_MAX = 1000  # Heroku's largest Range page
RUNNING_DEPTH = 20  # releases looked through for the one that runs, past failed ones


class CommitCache(Protocol):
    """Build -> commit; builds are immutable (the Redis cache keeps each for 30 days)."""

    async def get(self, artifact: Artifact) -> str | None: ...
    async def put(self, artifact: Artifact, commit: str) -> None: ...


class HerokuClient:
    """The Platform API endpoints Cascade calls, over one `Transport`."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        commits: CommitCache | None = None,
        **options: Unpack[Options],
    ) -> None:
        self._api = Transport(base_url, token, **options)
        self._commits = commits

    @property
    def calls(self) -> Counter[str]:
        """Attempts so far, by endpoint (`"GET /apps/{app}"`)."""
        return self._api.calls

    @property
    def rate_limit_remaining(self) -> int | None:
        """Heroku's last RateLimit-Remaining (None: not heard yet)."""
        return self._api.rate_limit_remaining

    @rate_limit_remaining.setter
    def rate_limit_remaining(self, value: int | None) -> None:
        self._api.rate_limit_remaining = value

    async def aclose(self) -> None:
        await self._api.aclose()

    async def get_pipeline(self, id_or_name: str) -> Pipeline:
        response = await self._api.send("GET", "/pipelines/{id}", id=id_or_name)
        return shaped("pipeline", schema.pipeline, response)

    async def stack(self, app: str) -> str:
        """The name of the app's stack (`GET /apps/{app}`): "container" for Docker deploys."""
        response = await self._api.send("GET", "/apps/{app}", app=app)
        return shaped("app", lambda d: str(d["stack"]["name"]), response)

    async def couplings(self, pipeline_id: str) -> list[Coupling]:
        items = await self._api.list("/pipelines/{id}/pipeline-couplings", id=pipeline_id)
        return shaped("pipeline couplings", lambda ds: [schema.coupling(d) for d in ds], items)

    async def latest_releases(self, pipeline_id: str) -> list[Release]:
        """The newest release of every app in the pipeline, in one call plus uncached builds."""
        items = await self._api.list("/pipelines/{id}/latest-releases", id=pipeline_id)
        return await self._releases(items)

    async def releases(self, app: str, limit: int = 50) -> list[Release]:
        """An app's newest `limit` releases, newest first."""
        rng = f"version ..; order=desc,max={min(limit, PAGE_MAX)}"
        items = await self._api.list("/apps/{app}/releases", rng=rng, limit=limit, app=app)
        return await self._releases(items)

    async def release(self, app: str, release_id: str) -> Release:
        """One release of `app` by id, with its commit (NotFound: Heroku no longer has it)."""
        response = await self._api.send("GET", "/apps/{app}/releases/{id}", app=app, id=release_id)
        (found,) = await self._releases([shaped("release", dict, response)])
        return found

    async def rollback(self, app: str, release_id: str) -> Release:
        """Release `release_id`'s build on `app` again (the Platform API's release Rollback).

        Sent once: no answer raises OutcomeUnknown, which must not be repeated."""
        body = {"release": release_id}
        response = await self._api.send("POST", "/apps/{app}/releases", json=body, app=app)
        (made,) = await self._releases([shaped("release", dict, response)])
        return made

    async def running(self, latest: Release, before: Release | None) -> Release | None:
        """What runs on `latest.app`: its newest succeeded release (None: none of the last
        `RUNNING_DEPTH`). A newer release that failed or is pending changes nothing that runs.

        `latest` (the app's newest) when it succeeded; `before`, a succeeded release of the
        app whose commit is known, when it is the one right before `latest` (versions leave
        nothing between them); otherwise the app's newest releases are read (one call).
        """
        if latest.status is ReleaseStatus.SUCCEEDED:
            return latest
        if (
            before is not None
            and before.app == latest.app
            and before.version == latest.version - 1
            and before.commit is not None  # a Fir release heard of by webhook may lack it yet
        ):
            return before
        for release in await self.releases(latest.app, RUNNING_DEPTH):
            if release.status is ReleaseStatus.SUCCEEDED:
                return release
        return None

    async def commit_of(self, app: str, artifact: Artifact) -> str | None:
        """The commit a build was made from: cache first, since builds never change."""
        cache = self._commits
        if cache is not None and (cached := await cache.get(artifact)) is not None:
            return cached
        commit = await self._built_from(app, artifact)
        if commit is not None and cache is not None:
            await cache.put(artifact, commit)
        return commit

    async def _built_from(self, app: str, artifact: Artifact) -> str | None:
        """Ask Heroku which commit a build came from (one call)."""
        if artifact.kind is ArtifactKind.SLUG:
            response = await self._api.send(
                "GET", "/apps/{app}/slugs/{id}", app=app, id=artifact.id
            )
            commit: str | None = shaped("slug", lambda d: d["commit"], response)
            return commit
        template = "/apps/{app}/oci-images/{id}"
        response = await self._api.send("GET", template, app=app, id=artifact.id)
        return shaped("OCI image", lambda d: schema.image_commit(d, artifact.id), response)

    async def create_promotion(
        self, pipeline_id: str, source_app_id: str, release_id: str, target_app_ids: Sequence[str]
    ) -> str:
        """Start a promotion pinned to `release_id`; returns its id.

        Raises PromotionRefused (nothing happened), OutcomeUnknown (it may have happened:
        never repeat it), or a plain HerokuError when the request provably never took
        effect (unreachable, rate-limited past every retry): safe to try again later.
        """
        body = {
            "pipeline": {"id": pipeline_id},
            "source": {"app": {"id": source_app_id}, "release": {"id": release_id}},
            "targets": [{"app": {"id": app_id}} for app_id in target_app_ids],
        }
        response = await self._api.send(
            "POST", "/pipeline-promotions", json=body, refused=PromotionRefused
        )
        try:
            promotion_id = response.json()["id"]
            if not isinstance(promotion_id, str):
                raise TypeError(f"id is {promotion_id!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise self._api.error(
                OutcomeUnknown, "POST", "/pipeline-promotions", response, f"no id: {exc!r}"
            ) from exc
        return promotion_id

    async def promotion_targets(self, promotion_id: str) -> list[PromotionTarget]:
        items = await self._api.list("/pipeline-promotions/{id}/promotion-targets", id=promotion_id)
        return shaped("promotion targets", lambda ds: [schema.target(d) for d in ds], items)

    async def webhooks(self, app: str) -> list[AppWebhook]:
        """Every webhook subscription of the app, ours and anyone else's."""
        items = await self._api.list("/apps/{app}/webhooks", app=app)
        return shaped("app webhooks", lambda ds: [schema.webhook(d) for d in ds], items)

    async def create_webhook(self, app: str, body: Mapping[str, Any]) -> AppWebhook:
        response = await self._api.send("POST", "/apps/{app}/webhooks", json=dict(body), app=app)
        return shaped("app webhook", schema.webhook, response)

    async def update_webhook(
        self, app: str, webhook_id: str, body: Mapping[str, Any]
    ) -> AppWebhook:
        response = await self._api.send(
            "PATCH", "/apps/{app}/webhooks/{id}", json=dict(body), app=app, id=webhook_id
        )
        return shaped("app webhook", schema.webhook, response)

    async def delete_webhook(self, app: str, webhook_id: str) -> None:
        await self._api.send("DELETE", "/apps/{app}/webhooks/{id}", app=app, id=webhook_id)

    async def _releases(self, items: list[Any]) -> list[Release]:
        """Turn release bodies into Releases, fetching each distinct uncached build once."""
        builds: dict[Artifact, str] = shaped("releases", schema.builds, items)
        commits = await asyncio.gather(*(self.commit_of(a, b) for b, a in builds.items()))
        by_build = dict(zip(builds, commits, strict=True))
        return shaped("releases", lambda ds: [schema.release(d, by_build) for d in ds], items)
