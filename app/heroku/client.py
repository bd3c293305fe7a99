"""The only door to the Heroku Platform API (v3).

The reconciler builds its snapshot from `latest_releases` (one call per pipeline, commits
resolved through the cache of immutable builds) and acts through `create_promotion`, then follows
`promotion_targets`. Reads are retried; a promotion POST is never repeated once it may have
reached Heroku, so a promotion happens at most once. Low rate-limit pools are paced, not hammered.
`app.heroku.subscriptions` keeps the app webhook subscriptions through the `webhooks` calls.
"""

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import httpx

from app.core.models import Artifact, ArtifactKind, Release, ReleaseStatus
from app.core.order import rolled_back_to
from app.version import user_agent

log = logging.getLogger(__name__)

T = TypeVar("T")
ACCEPT = "application/vnd.heroku+json; version=3"
MAX_PAGES = 50  # 50 pages of up to 1000 items: far more than any pipeline has
MAX_RETRY_AFTER = 60.0  # never let one Retry-After stall a reconcile for longer
PAGE_MAX = 1000  # Heroku's largest Range page
RUNNING_DEPTH = 20  # releases looked through for the one that runs, past failed ones
# The request provably never left this process, so even a POST may be sent again.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class HerokuError(Exception):
    """A Platform API call failed; carries what Heroku support needs to trace it."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_id: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.request_id = request_id


class PromotionRefused(HerokuError):
    """Heroku clearly refused the promotion (4xx other than 429): nothing happened."""


class OutcomeUnknown(HerokuError):
    """The promotion POST may have reached Heroku: never POST it again."""


class NotFound(HerokuError):
    """Heroku has nothing at that id (404): a cached pipeline or app id may be stale."""


@dataclass(frozen=True)
class Pipeline:
    id: str
    name: str


@dataclass(frozen=True)
class Coupling:
    app_id: str
    stage: str  # development|staging|production|test|review


@dataclass(frozen=True)
class AppWebhook:
    """An app webhook subscription as Heroku lists it; Heroku never shows its secret."""

    id: str
    url: str
    include: tuple[str, ...]
    level: str  # notify|sync


# Told of every attempt: endpoint ("GET /apps/{app}"), HTTP status (None: no answer), and the
# last RateLimit-Remaining; `app.metrics` counts them.
CallObserver = Callable[[str, int | None, int | None], None]


@dataclass(frozen=True)
class PromotionTarget:
    app_id: str
    status: str  # pending|succeeded|failed
    release_id: str | None
    error_message: str | None


class CommitCache(Protocol):
    """Build -> commit; builds are immutable (the Redis cache keeps each for 30 days)."""

    async def get(self, artifact: Artifact) -> str | None: ...
    async def put(self, artifact: Artifact, commit: str) -> None: ...


def _timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _shaped(what: str, parse: Callable[[Any], T], data: Any) -> T:
    """Parse a response body; a shape we do not know is an error, never a guess."""
    try:
        return parse(data.json() if isinstance(data, httpx.Response) else data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise HerokuError(f"unexpected {what} from Heroku: {exc!r}") from exc


class HerokuClient:
    """One authenticated connection pool to the Platform API, with retries and pacing."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        commits: CommitCache | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        max_retries: int = 4,
        backoff: float = 0.5,
        pace_below: int = 200,
        pace_interval: float = 0.8,
        concurrency: int = 8,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        observe: CallObserver | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={
                "Accept": ACCEPT,
                "Authorization": f"Bearer {token}",
                "User-Agent": user_agent(),
            },
        )
        self._commits = commits
        self._max_retries = max_retries
        self._backoff = backoff
        self._pace_below = pace_below  # RateLimit-Remaining under this: pace requests
        self._pace_interval = pace_interval  # 0.8 s = Heroku's refill of 75 tokens a minute
        self._slots = asyncio.Semaphore(concurrency)
        self._sleep = sleep
        self._clock = clock
        self._next_slot = 0.0
        self._pacing = False
        self.calls: Counter[str] = Counter()
        self.rate_limit_remaining: int | None = None
        self._observe = observe  # each call's endpoint, status and RateLimit-Remaining

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get_pipeline(self, id_or_name: str) -> Pipeline:
        response = await self._send("GET", "/pipelines/{id}", id=id_or_name)
        return _shaped("pipeline", lambda d: Pipeline(id=d["id"], name=d["name"]), response)

    async def stack(self, app: str) -> str:
        """The name of the app's stack (`GET /apps/{app}`): "container" for Docker deploys."""
        response = await self._send("GET", "/apps/{app}", app=app)
        return _shaped("app", lambda d: str(d["stack"]["name"]), response)

    async def couplings(self, pipeline_id: str) -> list[Coupling]:
        items = await self._list("/pipelines/{id}/pipeline-couplings", id=pipeline_id)
        return _shaped(
            "pipeline couplings",
            lambda ds: [Coupling(app_id=d["app"]["id"], stage=d["stage"]) for d in ds],
            items,
        )

    async def latest_releases(self, pipeline_id: str) -> list[Release]:
        """The newest release of every app in the pipeline, in one call plus uncached builds."""
        items = await self._list("/pipelines/{id}/latest-releases", id=pipeline_id)
        return await self._releases(items)

    async def releases(self, app: str, limit: int = 50) -> list[Release]:
        """An app's newest `limit` releases, newest first."""
        rng = f"version ..; order=desc,max={min(limit, PAGE_MAX)}"
        items = await self._list("/apps/{app}/releases", rng=rng, limit=limit, app=app)
        return await self._releases(items)

    async def release(self, app: str, release_id: str) -> Release:
        """One release of `app` by id, with its commit (NotFound: Heroku no longer has it)."""
        response = await self._send("GET", "/apps/{app}/releases/{id}", app=app, id=release_id)
        (found,) = await self._releases([_shaped("release", dict, response)])
        return found

    async def rollback(self, app: str, release_id: str) -> Release:
        """Release `release_id`'s build on `app` again (the Platform API's release Rollback).

        Sent once: no answer raises OutcomeUnknown, which must not be repeated."""
        body = {"release": release_id}
        response = await self._send("POST", "/apps/{app}/releases", json=body, app=app)
        (made,) = await self._releases([_shaped("release", dict, response)])
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
            response = await self._send("GET", "/apps/{app}/slugs/{id}", app=app, id=artifact.id)
            commit: str | None = _shaped("slug", lambda d: d["commit"], response)
            return commit
        template = "/apps/{app}/oci-images/{id}"
        response = await self._send("GET", template, app=app, id=artifact.id)
        return _shaped("OCI image", lambda d: _image_commit(d, artifact.id), response)

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
        response = await self._send("POST", "/pipeline-promotions", json=body)
        try:
            promotion_id = response.json()["id"]
            if not isinstance(promotion_id, str):
                raise TypeError(f"id is {promotion_id!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise self._error(
                OutcomeUnknown, "POST", "/pipeline-promotions", response, f"no id: {exc!r}"
            ) from exc
        return promotion_id

    async def promotion_targets(self, promotion_id: str) -> list[PromotionTarget]:
        items = await self._list("/pipeline-promotions/{id}/promotion-targets", id=promotion_id)
        return _shaped("promotion targets", lambda ds: [_target(d) for d in ds], items)

    async def webhooks(self, app: str) -> list[AppWebhook]:
        """Every webhook subscription of the app, ours and anyone else's."""
        items = await self._list("/apps/{app}/webhooks", app=app)
        return _shaped("app webhooks", lambda ds: [_webhook(d) for d in ds], items)

    async def create_webhook(self, app: str, body: Mapping[str, Any]) -> AppWebhook:
        response = await self._send("POST", "/apps/{app}/webhooks", json=dict(body), app=app)
        return _shaped("app webhook", _webhook, response)

    async def update_webhook(
        self, app: str, webhook_id: str, body: Mapping[str, Any]
    ) -> AppWebhook:
        response = await self._send(
            "PATCH", "/apps/{app}/webhooks/{id}", json=dict(body), app=app, id=webhook_id
        )
        return _shaped("app webhook", _webhook, response)

    async def delete_webhook(self, app: str, webhook_id: str) -> None:
        await self._send("DELETE", "/apps/{app}/webhooks/{id}", app=app, id=webhook_id)

    async def _releases(self, items: list[Any]) -> list[Release]:
        """Turn release bodies into Releases, fetching each distinct uncached build once."""
        builds: dict[Artifact, str] = _shaped("releases", _builds, items)
        commits = await asyncio.gather(*(self.commit_of(a, b) for b, a in builds.items()))
        by_build = dict(zip(builds, commits, strict=True))
        return _shaped("releases", lambda ds: [_release(d, by_build) for d in ds], items)

    async def _list(
        self, template: str, *, rng: str | None = None, limit: int | None = None, **ids: str
    ) -> list[Any]:
        """GET every page of a list: a 206 names the next page in Next-Range."""
        items: list[Any] = []
        for _ in range(MAX_PAGES):
            headers = {"Range": rng} if rng else None
            response = await self._send("GET", template, headers=headers, **ids)
            items.extend(_shaped(f"page of {template}", _array, response))
            rng = response.headers.get("Next-Range")
            if response.status_code != 206 or not rng or (limit and len(items) >= limit):
                return items[:limit] if limit else items
        raise HerokuError(f"GET {template}: more than {MAX_PAGES} pages, giving up")

    async def _send(
        self,
        method: str,
        template: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        **ids: str,
    ) -> httpx.Response:
        """One logical request: paced, counted, retried only where that cannot repeat an action."""
        path = template.format(**{k: quote(v, safe="") for k, v in ids.items()})
        for attempt in range(self._max_retries + 1):
            response, problem = await self._attempt(method, template, path, json, headers)
            if response is not None and response.status_code < 400:
                return response
            if attempt == self._max_retries:
                break
            wait = _retry_after(response) if response is not None else None
            delay = self._delay(attempt) if wait is None else wait
            log.warning("heroku %s %s: %s; retry in %.2fs", method, path, problem, delay)
            await self._sleep(delay)
        tries = f"{problem}; gave up after {self._max_retries + 1} tries"
        raise self._error(HerokuError, method, path, response, tries)

    async def _attempt(
        self,
        method: str,
        template: str,
        path: str,
        json: Any,
        headers: Mapping[str, str] | None,
    ) -> tuple[httpx.Response | None, str]:
        """Send once; raise at once when a retry cannot help or might repeat a promotion."""
        once = method != "GET"  # a POST is repeated only when it provably did nothing
        async with self._slots:
            await self._pace()
            self.calls[f"{method} {template}"] += 1
            try:
                response = await self._http.request(method, path, json=json, headers=headers)
            except httpx.TransportError as exc:
                self._observed(method, template, None)
                problem = f"{type(exc).__name__}: {exc}"
                if once and not isinstance(exc, NOT_SENT):
                    raise self._error(OutcomeUnknown, method, path, None, problem) from exc
                return None, problem
        self._note_rate_limit(response)
        status = response.status_code
        self._observed(method, template, status)
        if status >= 500 and once:
            raise self._error(OutcomeUnknown, method, path, response)
        if 400 <= status < 500 and status != 429:
            promotion = once and template == "/pipeline-promotions"
            kind = NotFound if status == 404 else HerokuError
            raise self._error(PromotionRefused if promotion else kind, method, path, response)
        return response, f"HTTP {status}"

    async def _pace(self) -> None:
        """Spread requests out at the refill rate while the rate-limit pool is nearly empty."""
        remaining = self.rate_limit_remaining
        if remaining is None or remaining >= self._pace_below:
            self._pacing = False
            return
        if not self._pacing:
            self._pacing = True
            interval = self._pace_interval
            log.warning("heroku rate limit low (%s left): pacing at %.2fs", remaining, interval)
        now = self._clock()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._pace_interval
        if slot > now:
            await self._sleep(slot - now)

    def _observed(self, method: str, template: str, status: int | None) -> None:
        if self._observe is not None:
            self._observe(f"{method} {template}", status, self.rate_limit_remaining)

    def _note_rate_limit(self, response: httpx.Response) -> None:
        remaining = response.headers.get("RateLimit-Remaining")
        if remaining is not None and remaining.strip().isdigit():
            self.rate_limit_remaining = int(remaining)

    def _delay(self, attempt: int) -> float:
        base: float = self._backoff * 2**attempt
        return base + random.uniform(0, base / 4)

    def _error(
        self,
        cls: type[HerokuError],
        method: str,
        path: str,
        response: httpx.Response | None,
        detail: str | None = None,
    ) -> HerokuError:
        """Build and log the error: method, path, status, Heroku's id, Request-Id; no token."""
        status = error_id = request_id = message = None
        if response is not None:
            status, request_id = response.status_code, response.headers.get("Request-Id")
            try:
                error_id, message = (body := response.json()).get("id"), body.get("message")
            except (ValueError, AttributeError):
                message = response.text[:200] or None
        head = f"Heroku {method} {path}: {status or 'no response'} {error_id or ''}".rstrip()
        text = "; ".join(part for part in (head, message, detail) if part)
        text += f" (Request-Id {request_id})" if request_id else ""
        log.error("%s [%s]", text, cls.__name__)
        return cls(text, status=status, error_id=error_id, request_id=request_id)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER) if value else None
    except ValueError:  # an HTTP-date: fall back to our own backoff
        return None


def _array(data: Any) -> list[Any]:
    if not isinstance(data, list):
        raise TypeError(f"expected a JSON array, got {type(data).__name__}")
    return data


def _artifact(d: Mapping[str, Any]) -> Artifact | None:
    """The build a release body runs: its slug (Cedar), else its OCI image (Fir), else none
    (the container stack, or a release before any deploy)."""
    if d["slug"]:
        return Artifact(ArtifactKind.SLUG, d["slug"]["id"])
    for artifact in d.get("artifacts") or ():
        if artifact["type"] == ArtifactKind.OCI_IMAGE:
            return Artifact(ArtifactKind.OCI_IMAGE, artifact["id"])
    return None


def _builds(ds: Sequence[Mapping[str, Any]]) -> dict[Artifact, str]:
    """Each distinct build of the release bodies, and an app (id) it was released on."""
    return {built: d["app"]["id"] for d in ds if (built := _artifact(d)) is not None}


def _release(d: Mapping[str, Any], commits: Mapping[Artifact, str | None]) -> Release:
    built = _artifact(d)
    return Release(
        id=d["id"],
        app=d["app"]["name"],
        version=int(d["version"]),
        status=ReleaseStatus(d["status"]),
        commit=commits[built] if built else None,
        created_at=_timestamp(d["created_at"]),
        app_id=d["app"]["id"],
        slug_id=built.id if built and built.kind is ArtifactKind.SLUG else None,
        oci_image_id=built.id if built and built.kind is ArtifactKind.OCI_IMAGE else None,
        rollback_of=rolled_back_to(d.get("description")),
    )


def _image_commit(data: Any, image_id: str) -> str | None:
    """The commit of the OCI image `image_id`: the schema answers a list of the images that
    match the identifier; a lone object is read too. No commit, or no such image: None."""
    for image in data if isinstance(data, list) else [data]:
        if image["id"] == image_id:
            commit = image.get("commit")
            if commit is not None and not isinstance(commit, str):
                raise TypeError(f"commit is {commit!r}")
            return commit or None
    return None


def _target(d: Mapping[str, Any]) -> PromotionTarget:
    return PromotionTarget(
        app_id=d["app"]["id"],
        status=d["status"],
        release_id=d["release"]["id"] if d.get("release") else None,
        error_message=d.get("error_message"),
    )


def _webhook(d: Mapping[str, Any]) -> AppWebhook:
    return AppWebhook(id=d["id"], url=d["url"], include=tuple(d["include"]), level=d["level"])
