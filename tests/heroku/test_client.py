"""app.heroku.client (and its transport) against respx routes that answer in the shapes of
Heroku's published schema."""

import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
import respx

from app.core.models import Artifact, ArtifactKind, Release, ReleaseStatus
from app.heroku.client import (
    Coupling,
    HerokuClient,
    HerokuError,
    NotFound,
    OutcomeUnknown,
    Pipeline,
    PromotionRefused,
    PromotionTarget,
)
from tests.conftest import FIXTURES

BASE = "https://api.heroku.test"
TOKEN = "hrku-secret-token-0123456789"
SCHEMA_PATH = FIXTURES / "heroku-platform-api-schema.json"


def uid(name: str) -> str:
    """A stable UUID per name, so fixtures stay readable and deterministic."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


PIPELINE_ID = uid("pipeline:api")
SHA = {n: f"{n:040x}" for n in range(1, 6)}


# --- schema-shaped bodies ---------------------------------------------------------------------


def release_json(
    app: str = "api-qa01",
    version: int = 7,
    *,
    status: str = "succeeded",
    slug: str | None = "slug-a",
    created_at: str = "2026-01-02T03:04:05Z",
    image: str | None = None,
) -> dict[str, Any]:
    """A Cedar release of `slug`; with `image` (and no slug), a Fir release of that OCI image."""
    slug_id = uid(slug) if slug else None
    artifacts = [{"type": "slug", "id": slug_id}] if slug_id else []
    if image:
        artifacts = [{"type": "oci-image", "id": uid(image)}]
    return {
        "addon_plan_names": ["heroku-postgresql:essential-0"],
        "artifacts": artifacts,
        "app": {"id": uid(app), "name": app},
        "created_at": created_at,
        "description": f"Deploy {version}",
        "id": uid(f"release:{app}:{version}"),
        "updated_at": created_at,
        "slug": {"id": slug_id} if slug_id else None,
        "status": status,
        "user": {"id": uid("user"), "email": "ci@example.com"},
        "version": version,
        "current": status == "succeeded",
        "output_stream_url": None,
        "eligible_for_rollback": True,
    }


def slug_json(slug: str, commit: str | None) -> dict[str, Any]:
    return {
        "blob": {"method": "GET", "url": "https://slugs.example.com/blob"},
        "buildpack_provided_description": "Python",
        "checksum": "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "commit": commit,
        "commit_description": "fix things",
        "created_at": "2026-01-02T03:00:00Z",
        "id": uid(slug),
        "process_types": {"web": "uvicorn app.main:app"},
        "size": 2048,
        "stack": {"id": uid("heroku-24"), "name": "heroku-24"},
        "updated_at": "2026-01-02T03:00:00Z",
        "deleted_at": None,
    }


def oci_image_json(image: str, commit: str) -> dict[str, Any]:
    return {
        "id": uid(image),
        "base_image_name": "heroku/heroku:24-cnb",
        "base_top_layer": "sha256:ea36ae5fbc1e7230e0a782bf216fb46500e210382703baa6bab8acf2c6a23f78",
        "commit": commit,
        "commit_description": "fix things",
        "image_repo": f"{uid('api-qa01')}/builds",
        "digest": "sha256:dc14ae5fbc1e7230e0a782bf216fb46500e210631703bcc6bab8acf2c6a23f42",
        "stack": {"id": uid("cnb"), "name": "cnb"},
        "process_types": {
            "web": {
                "name": "web",
                "display_cmd": "uvicorn app.main:app",
                "command": "/cnb/process/web",
                "working_dir": "/workspace",
                "default": True,
            }
        },
        "buildpacks": [{"id": "heroku/python", "version": "1.0.0", "homepage": "https://x.test"}],
        "created_at": "2026-01-02T03:00:00Z",
        "updated_at": "2026-01-02T03:00:00Z",
        "architecture": "amd64",
        "deleted_at": None,
    }


def app_json(app: str, stack: str = "heroku-24") -> dict[str, Any]:
    named = {"id": uid(stack), "name": stack}
    return {
        "acm": False,
        "archived_at": None,
        "buildpack_provided_description": None,
        "build_stack": named,
        "created_at": "2025-01-01T00:00:00Z",
        "generation": {"id": uid("cedar"), "name": "cedar"},
        "git_url": f"https://git.heroku.com/{app}.git",
        "id": uid(app),
        "internal_routing": None,
        "maintenance": False,
        "name": app,
        "owner": {"id": uid("team"), "email": "team@example.com"},
        "organization": None,
        "team": None,
        "region": {"id": uid("us"), "name": "us"},
        "released_at": "2026-01-02T03:04:05Z",
        "repo_size": None,
        "slug_size": None,
        "space": None,
        "stack": named,
        "updated_at": "2026-01-02T03:04:05Z",
        "web_url": f"https://{app}.herokuapp.com/",
    }


def pipeline_json(name: str = "api") -> dict[str, Any]:
    return {
        "created_at": "2025-01-01T00:00:00Z",
        "id": PIPELINE_ID,
        "name": name,
        "owner": {"id": uid("team"), "type": "team"},
        "updated_at": "2025-01-01T00:00:00Z",
        "generation": {"id": uid("cedar"), "name": "cedar"},
    }


def coupling_json(app: str, stage: str) -> dict[str, Any]:
    return {
        "app": {"id": uid(app)},
        "created_at": "2025-01-01T00:00:00Z",
        "id": uid(f"coupling:{app}"),
        "pipeline": {"id": PIPELINE_ID},
        "stage": stage,
        "updated_at": "2025-01-01T00:00:00Z",
    }


def promotion_json(status: str = "pending") -> dict[str, Any]:
    return {
        "created_at": "2026-01-02T04:00:00Z",
        "id": uid("promotion"),
        "pipeline": {"id": PIPELINE_ID},
        "source": {"app": {"id": uid("api-qa01")}, "release": {"id": uid("release:api-qa01:7")}},
        "status": status,
        "updated_at": "2026-01-02T04:00:00Z",
    }


def target_json(app: str, status: str, error: str | None = None) -> dict[str, Any]:
    return {
        "app": {"id": uid(app)},
        "error_message": error,
        "id": uid(f"target:{app}"),
        "pipeline_promotion": {"id": uid("promotion")},
        "release": {"id": uid(f"release:{app}:9")} if status != "pending" else None,
        "status": status,
    }


def error(status: int, error_id: str, message: str, request_id: str = "req-1") -> httpx.Response:
    body = {"id": error_id, "message": message}
    return httpx.Response(status, json=body, headers={"Request-Id": request_id})


# --- fixtures ---------------------------------------------------------------------------------


class FakeClock:
    """Stands in for monotonic time and asyncio.sleep: sleeps are recorded, never waited."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay


class MemoryCommits:
    """A CommitCache in memory; `known` names slugs."""

    def __init__(self, **known: str) -> None:
        self.data = {Artifact(ArtifactKind.SLUG, uid(s)): commit for s, commit in known.items()}
        self.puts: list[tuple[Artifact, str]] = []

    async def get(self, artifact: Artifact) -> str | None:
        return self.data.get(artifact)

    async def put(self, artifact: Artifact, commit: str) -> None:
        self.puts.append((artifact, commit))
        self.data[artifact] = commit


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """Every route defined must be used; any request without a route fails the test."""
    with respx.mock(base_url=BASE, assert_all_called=True) as router:
        yield router


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_client(clock: FakeClock) -> AsyncIterator[Callable[..., HerokuClient]]:
    clients: list[HerokuClient] = []

    def make(**kwargs: Any) -> HerokuClient:
        options: dict[str, Any] = {"backoff": 0.01, "sleep": clock.sleep, "clock": clock}
        client = HerokuClient(BASE, TOKEN, **(options | kwargs))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def client(make_client: Callable[..., HerokuClient]) -> HerokuClient:
    return make_client()


# --- the fixtures speak the schema ------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "body"),
    [
        # latest-releases items are checked as `release`: the schema's `pipeline-release`
        # declares `artifacts` a single object, a quirk the CLI and FORMATS.md do not share
        ("release", release_json()),
        ("release", release_json(slug=None, status="pending")),
        ("release", release_json(slug=None, image="image-a")),
        ("slug", slug_json("slug-a", SHA[1])),
        ("oci-image", oci_image_json("image-a", SHA[1])),
        ("app", app_json("api-qa01", "container")),
        ("pipeline", pipeline_json()),
        ("pipeline-coupling", coupling_json("api-qa01", "development")),
        ("pipeline-promotion", promotion_json()),
        ("pipeline-promotion-target", target_json("api-st01", "failed", "boom")),
        ("pipeline-promotion-target", target_json("api-st01", "pending")),
    ],
    ids=[
        "release",
        "release-no-slug",
        "release-fir",
        "slug",
        "oci-image",
        "app",
        "pipeline",
        "coupling",
        "promotion",
        "t",
        "t-pend",
    ],
)
def test_fixture_bodies_match_the_published_schema(definition: str, body: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    root = {"$ref": f"#/definitions/{definition}", "definitions": schema["definitions"]}
    jsonschema.Draft4Validator(root).validate(body)
    assert set(body) == set(schema["definitions"][definition]["properties"])


# --- reads ------------------------------------------------------------------------------------


async def test_sends_v3_accept_bearer_token_and_user_agent(
    api: respx.MockRouter, client: HerokuClient
) -> None:
    route = api.get("/pipelines/api").respond(json=pipeline_json())

    assert await client.get_pipeline("api") == Pipeline(id=PIPELINE_ID, name="api")

    headers = route.calls.last.request.headers
    assert headers["Accept"] == "application/vnd.heroku+json; version=3"
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["User-Agent"].startswith("cascade/")


async def test_couplings_follow_next_range_across_206_pages(
    api: respx.MockRouter, client: HerokuClient
) -> None:
    first = [coupling_json("api-qa01", "development"), coupling_json("api-st01", "staging")]
    second = [coupling_json("api-va01", "production")]
    route = api.get(f"/pipelines/{PIPELINE_ID}/pipeline-couplings").mock(
        side_effect=[
            httpx.Response(206, json=first, headers={"Next-Range": "]abc..; max=2"}),
            httpx.Response(200, json=second),
        ]
    )

    couplings = await client.couplings(PIPELINE_ID)

    assert couplings == [
        Coupling(uid("api-qa01"), "development"),
        Coupling(uid("api-st01"), "staging"),
        Coupling(uid("api-va01"), "production"),
    ]
    assert "Range" not in route.calls[0].request.headers
    assert route.calls[1].request.headers["Range"] == "]abc..; max=2"


async def test_latest_releases_resolve_commits_through_the_slug_cache(
    api: respx.MockRouter, make_client: Callable[..., HerokuClient]
) -> None:
    slugs = MemoryCommits(**{"slug-a": SHA[1]})
    client = make_client(commits=slugs)
    api.get(f"/pipelines/{PIPELINE_ID}/latest-releases").respond(
        json=[
            release_json("api-qa01", 12, slug="slug-b", status="pending"),
            release_json("api-st01", 8, slug="slug-a"),
            release_json("api-va01", 5, slug=None, status="failed"),
        ]
    )
    slug_b = api.get(f"/apps/{uid('api-qa01')}/slugs/{uid('slug-b')}")
    slug_b.respond(json=slug_json("slug-b", SHA[2]))

    qa, st, va = await client.latest_releases(PIPELINE_ID)

    assert qa == Release(
        id=uid("release:api-qa01:12"),
        app="api-qa01",
        version=12,
        status=ReleaseStatus.PENDING,
        commit=SHA[2],
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        app_id=uid("api-qa01"),
        slug_id=uid("slug-b"),
    )
    assert (st.commit, st.status) == (SHA[1], ReleaseStatus.SUCCEEDED)  # from the cache
    assert (va.commit, va.slug_id, va.status) == (None, None, ReleaseStatus.FAILED)
    assert slugs.puts == [(Artifact(ArtifactKind.SLUG, uid("slug-b")), SHA[2])]
    assert slug_b.call_count == 1

    await client.latest_releases(PIPELINE_ID)  # now every slug is cached: one call
    assert slug_b.call_count == 1


async def test_fir_releases_resolve_their_oci_image_commits_through_the_cache(
    api: respx.MockRouter, make_client: Callable[..., HerokuClient]
) -> None:
    cache = MemoryCommits()
    client = make_client(commits=cache)
    api.get(f"/pipelines/{PIPELINE_ID}/latest-releases").respond(
        json=[
            release_json("api-qa01", 3, slug=None, image="image-b"),
            release_json("api-st01", 2, slug=None, image="image-b"),  # promoted: same image
        ]
    )
    image = api.get(url__regex=rf"/apps/[^/]+/oci-images/{uid('image-b')}$")  # of an app running it
    image.respond(json=[oci_image_json("image-b", SHA[2])])  # the schema answers a list

    qa, st = await client.latest_releases(PIPELINE_ID)

    built = Artifact(ArtifactKind.OCI_IMAGE, uid("image-b"))
    assert (qa.commit, qa.slug_id, qa.oci_image_id, qa.artifact) == (
        SHA[2],
        None,
        uid("image-b"),
        built,
    )
    assert (st.commit, st.artifact) == (SHA[2], built)
    assert cache.puts == [(built, SHA[2])]
    assert image.call_count == 1

    await client.latest_releases(PIPELINE_ID)  # a second read of the image: no call
    assert image.call_count == 1


@pytest.mark.parametrize(
    ("answer", "commit"),
    [
        ([oci_image_json("image-b", SHA[2])], SHA[2]),
        (oci_image_json("image-b", SHA[2]), SHA[2]),
        ([oci_image_json("image-c", SHA[3]), oci_image_json("image-b", SHA[2])], SHA[2]),
        ([], None),
        ([oci_image_json("image-c", SHA[3])], None),
        ([{k: v for k, v in oci_image_json("image-b", SHA[2]).items() if k != "commit"}], None),
        ([oci_image_json("image-b", "")], None),
    ],
    ids=["list", "object", "the-one-asked", "none", "another", "no-commit", "empty-commit"],
)
async def test_an_oci_image_commit_is_read_from_the_image_asked_for(
    api: respx.MockRouter,
    make_client: Callable[..., HerokuClient],
    answer: Any,
    commit: str | None,
) -> None:
    client = make_client(commits=MemoryCommits())
    api.get(f"/apps/{uid('api-qa01')}/oci-images/{uid('image-b')}").respond(json=answer)
    built = Artifact(ArtifactKind.OCI_IMAGE, uid("image-b"))
    assert await client.commit_of(uid("api-qa01"), built) == commit


@pytest.mark.parametrize("stack", ["container", "heroku-24"])
async def test_stack_names_the_apps_stack(
    api: respx.MockRouter, make_client: Callable[..., HerokuClient], stack: str
) -> None:
    api.get(f"/apps/{uid('api-qa01')}").respond(json=app_json("api-qa01", stack))
    assert await make_client().stack(uid("api-qa01")) == stack


async def test_an_oci_image_of_an_unknown_shape_is_an_error(
    api: respx.MockRouter, make_client: Callable[..., HerokuClient]
) -> None:
    client = make_client()
    api.get(f"/apps/{uid('api-qa01')}/oci-images/{uid('image-b')}").respond(json=[{"commit": 7}])
    with pytest.raises(HerokuError, match="unexpected OCI image"):
        await client.commit_of(uid("api-qa01"), Artifact(ArtifactKind.OCI_IMAGE, uid("image-b")))


async def test_releases_ask_newest_first_and_resolve_each_slug_once(
    api: respx.MockRouter, client: HerokuClient
) -> None:
    route = api.get("/apps/api-st01/releases").respond(
        206,
        json=[release_json("api-st01", 9, slug="s"), release_json("api-st01", 8, slug="s")],
        headers={"Next-Range": "]8..; order=desc,max=2"},
    )
    slug = api.get(f"/apps/{uid('api-st01')}/slugs/{uid('s')}").respond(json=slug_json("s", None))

    releases = await client.releases("api-st01", limit=2)

    assert [r.version for r in releases] == [9, 8]
    assert [r.commit for r in releases] == [None, None]
    assert route.calls.last.request.headers["Range"] == "version ..; order=desc,max=2"
    assert route.call_count == 1  # the limit is reached: the next page is not fetched
    assert slug.call_count == 1


def _release(version: int, status: ReleaseStatus, commit: str | None = "a" * 40) -> Release:
    return Release(
        id=uid(f"release:api-st01:{version}"),
        app="api-st01",
        version=version,
        status=status,
        commit=commit,
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
    )


async def test_what_runs_is_the_newest_succeeded_release_read_only_when_unknown(
    api: respx.MockRouter, client: HerokuClient
) -> None:
    route = api.get("/apps/api-st01/releases").respond(
        json=[
            release_json("api-st01", 9, slug=None, status="failed"),
            release_json("api-st01", 8, slug=None),
            release_json("api-st01", 7, slug=None),
        ]
    )
    failed, succeeded = _release(9, ReleaseStatus.FAILED), _release(8, ReleaseStatus.SUCCEEDED)
    assert await client.running(succeeded, None) is succeeded  # the newest runs
    assert await client.running(failed, succeeded) is succeeded  # nothing between: no call
    assert route.call_count == 0
    running = await client.running(failed, _release(7, ReleaseStatus.SUCCEEDED))  # v8 between
    assert running is not None
    assert running.version == 8
    assert route.call_count == 1
    # one right before whose commit is not known (a Fir release heard of by webhook): read
    assert await client.running(failed, _release(8, ReleaseStatus.SUCCEEDED, None)) is not None
    assert route.call_count == 2


async def test_a_rollback_release_says_which_version_it_brought_back(
    api: respx.MockRouter, client: HerokuClient
) -> None:
    rollback = {**release_json("api-st01", 9, slug="s"), "description": "Rollback to v4"}
    api.get("/apps/api-st01/releases").respond(json=[rollback, release_json("api-st01", 8)])
    api.get(f"/apps/{uid('api-st01')}/slugs/{uid('s')}").respond(json=slug_json("s", SHA[1]))
    api.get(f"/apps/{uid('api-st01')}/slugs/{uid('slug-a')}").respond(
        json=slug_json("slug-a", SHA[2])
    )

    releases = await client.releases("api-st01", limit=2)

    assert [r.rollback_of for r in releases] == [4, None]


async def test_unknown_release_status_is_an_error_not_a_guess(
    api: respx.MockRouter, client: HerokuClient
) -> None:
    api.get("/apps/api/releases").respond(json=[release_json(status="rolled-sideways", slug=None)])

    with pytest.raises(HerokuError, match="unexpected releases"):
        await client.releases("api")


# --- retries, rate limits, pacing -------------------------------------------------------------


async def test_get_is_retried_on_503_and_network_errors_then_succeeds(
    api: respx.MockRouter, client: HerokuClient, clock: FakeClock
) -> None:
    route = api.get("/pipelines/api").mock(
        side_effect=[
            error(503, "unavailable", "try later"),
            httpx.ReadTimeout("slow"),
            httpx.Response(200, json=pipeline_json()),
        ]
    )

    assert (await client.get_pipeline("api")).name == "api"

    assert route.call_count == 3
    assert len(clock.sleeps) == 2
    assert 0.01 <= clock.sleeps[0] <= 0.0125  # backoff plus at most a quarter of jitter
    assert 0.02 <= clock.sleeps[1] <= 0.025  # doubled


async def test_get_gives_up_after_max_retries(
    api: respx.MockRouter, make_client: Callable[..., HerokuClient]
) -> None:
    client = make_client(max_retries=2)
    route = api.get("/pipelines/api").mock(return_value=error(503, "unavailable", "down"))

    with pytest.raises(HerokuError) as caught:
        await client.get_pipeline("api")

    assert type(caught.value) is HerokuError
    assert (caught.value.status, caught.value.error_id) == (503, "unavailable")
    assert "gave up after 3 tries" in str(caught.value)
    assert route.call_count == 3


async def test_get_4xx_is_not_retried(api: respx.MockRouter, client: HerokuClient) -> None:
    route = api.get("/pipelines/nope").mock(return_value=error(404, "not_found", "Not found."))

    with pytest.raises(HerokuError) as caught:
        await client.get_pipeline("nope")

    assert (caught.value.status, caught.value.error_id) == (404, "not_found")
    assert isinstance(caught.value, NotFound)  # a stale cached id: the topology is read again
    assert route.call_count == 1


async def test_a_403_is_not_a_not_found(api: respx.MockRouter, client: HerokuClient) -> None:
    api.get("/pipelines/api").mock(return_value=error(403, "forbidden", "No access."))

    with pytest.raises(HerokuError) as caught:
        await client.get_pipeline("api")

    assert not isinstance(caught.value, NotFound)


async def test_429_waits_for_retry_after_then_retries(
    api: respx.MockRouter, client: HerokuClient, clock: FakeClock
) -> None:
    limited = error(429, "rate_limit", "Your account reached the API rate limit")
    limited.headers["Retry-After"] = "3"
    route = api.get("/pipelines/api").mock(
        side_effect=[limited, httpx.Response(200, json=pipeline_json())]
    )

    await client.get_pipeline("api")

    assert route.call_count == 2
    assert clock.sleeps == [3.0]


async def test_low_rate_limit_remaining_paces_requests_and_warns_once(
    api: respx.MockRouter,
    make_client: Callable[..., HerokuClient],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = make_client(pace_below=10, pace_interval=0.5)
    api.get("/pipelines/api").mock(
        side_effect=[
            httpx.Response(200, json=pipeline_json(), headers={"RateLimit-Remaining": "50"}),
            httpx.Response(200, json=pipeline_json(), headers={"RateLimit-Remaining": "9"}),
            httpx.Response(200, json=pipeline_json(), headers={"RateLimit-Remaining": "8"}),
            httpx.Response(200, json=pipeline_json(), headers={"RateLimit-Remaining": "7"}),
            httpx.Response(200, json=pipeline_json(), headers={"RateLimit-Remaining": "6"}),
        ]
    )

    with caplog.at_level(logging.WARNING, logger="app.heroku.transport"):
        await client.get_pipeline("api")
        await client.get_pipeline("api")
        assert clock.sleeps == []  # plenty left so far: no pacing
        for _ in range(3):
            await client.get_pipeline("api")

    assert client.rate_limit_remaining == 6
    assert clock.sleeps == [0.5, 0.5]  # the first paced request goes at once, then one per 0.5s
    assert len([r for r in caplog.records if "rate limit low" in r.getMessage()]) == 1


# --- promotions -------------------------------------------------------------------------------


async def test_create_promotion_posts_the_pinned_release_and_returns_its_id(
    api: respx.MockRouter, client: HerokuClient
) -> None:
    route = api.post("/pipeline-promotions").respond(201, json=promotion_json())

    promotion_id = await client.create_promotion(
        PIPELINE_ID, uid("api-qa01"), uid("release:api-qa01:7"), [uid("api-st01")]
    )

    assert promotion_id == uid("promotion")
    assert json.loads(route.calls.last.request.content) == {
        "pipeline": {"id": PIPELINE_ID},
        "source": {"app": {"id": uid("api-qa01")}, "release": {"id": uid("release:api-qa01:7")}},
        "targets": [{"app": {"id": uid("api-st01")}}],
    }


async def promote(client: HerokuClient) -> str:
    return await client.create_promotion(PIPELINE_ID, uid("a"), uid("r"), [uid("b")])


@pytest.mark.parametrize(
    "answer",
    [
        error(500, "internal_server_error", "oops"),
        error(503, "unavailable", "down"),
        httpx.ReadTimeout("no answer"),
        httpx.WriteTimeout("half sent"),
        httpx.RemoteProtocolError("peer closed connection"),
        httpx.ReadError("reset"),
    ],
    ids=["500", "503", "read-timeout", "write-timeout", "dropped", "read-error"],
)
async def test_promotion_with_an_ambiguous_outcome_is_never_sent_twice(
    api: respx.MockRouter, client: HerokuClient, answer: httpx.Response | Exception
) -> None:
    route = api.post("/pipeline-promotions").mock(side_effect=[answer])

    with pytest.raises(OutcomeUnknown):
        await promote(client)

    assert route.call_count == 1


async def test_promotion_accepted_without_an_id_is_an_unknown_outcome(
    api: respx.MockRouter, client: HerokuClient
) -> None:
    api.post("/pipeline-promotions").respond(201, json={"status": "pending"})

    with pytest.raises(OutcomeUnknown, match="no id"):
        await promote(client)


async def test_promotion_refused_carries_herokus_error(
    api: respx.MockRouter, client: HerokuClient
) -> None:
    refusal = error(422, "invalid_params", "Couldn't find that release.", request_id="req-422")
    route = api.post("/pipeline-promotions").mock(return_value=refusal)

    with pytest.raises(PromotionRefused) as caught:
        await promote(client)

    assert (caught.value.status, caught.value.error_id) == (422, "invalid_params")
    assert caught.value.request_id == "req-422"
    assert "Couldn't find that release." in str(caught.value)
    assert route.call_count == 1


@pytest.mark.parametrize(
    "first",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("no route"),
        error(429, "rate_limit", "Your account reached the API rate limit"),
    ],
    ids=["connect-error", "connect-timeout", "429"],
)
async def test_promotion_that_provably_did_nothing_is_retried(
    api: respx.MockRouter, client: HerokuClient, first: httpx.Response | Exception
) -> None:
    route = api.post("/pipeline-promotions").mock(
        side_effect=[first, httpx.Response(201, json=promotion_json())]
    )

    assert await promote(client) == uid("promotion")
    assert route.call_count == 2


async def test_promotion_still_unsent_after_every_retry_is_a_plain_error(
    api: respx.MockRouter, make_client: Callable[..., HerokuClient]
) -> None:
    client = make_client(max_retries=1)
    api.post("/pipeline-promotions").mock(side_effect=httpx.ConnectError("refused"))

    with pytest.raises(HerokuError) as caught:
        await promote(client)

    assert not isinstance(caught.value, PromotionRefused | OutcomeUnknown)


async def test_promotion_targets_are_parsed(api: respx.MockRouter, client: HerokuClient) -> None:
    api.get(f"/pipeline-promotions/{uid('promotion')}/promotion-targets").respond(
        json=[
            target_json("api-st01", "succeeded"),
            target_json("api-st02", "pending"),
            target_json("api-st03", "failed", "Phase failed"),
        ]
    )

    assert await client.promotion_targets(uid("promotion")) == [
        PromotionTarget(uid("api-st01"), "succeeded", uid("release:api-st01:9"), None),
        PromotionTarget(uid("api-st02"), "pending", None, None),
        PromotionTarget(uid("api-st03"), "failed", uid("release:api-st03:9"), "Phase failed"),
    ]


# --- what the rest of Cascade sees --------------------------------------------------------------


async def test_errors_name_the_request_id_and_never_the_token(
    api: respx.MockRouter, client: HerokuClient, caplog: pytest.LogCaptureFixture
) -> None:
    api.get("/pipelines/api").mock(return_value=error(403, "forbidden", "No.", "req-abc"))

    with caplog.at_level(logging.DEBUG), pytest.raises(HerokuError) as caught:
        await client.get_pipeline("api")

    assert "req-abc" in str(caught.value)
    assert "GET /pipelines/api" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value.args)
    assert caplog.records
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
    assert any("req-abc" in r.getMessage() for r in caplog.records)


async def test_calls_counts_every_request_by_path_template(
    api: respx.MockRouter, client: HerokuClient
) -> None:
    api.get("/pipelines/api").mock(
        side_effect=[error(503, "unavailable", "x"), httpx.Response(200, json=pipeline_json())]
    )
    api.get(f"/pipelines/{PIPELINE_ID}/latest-releases").respond(json=[release_json(slug="z")])
    api.get(f"/apps/{uid('api-qa01')}/slugs/{uid('z')}").respond(json=slug_json("z", SHA[3]))

    await client.get_pipeline("api")
    await client.latest_releases(PIPELINE_ID)

    assert client.calls == {
        "GET /pipelines/{id}": 2,
        "GET /pipelines/{id}/latest-releases": 1,
        "GET /apps/{app}/slugs/{id}": 1,
    }
