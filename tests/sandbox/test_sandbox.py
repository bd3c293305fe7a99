"""The sandbox platform as Cascade sees it: Heroku's Platform API, webhooks, and /_sandbox.

Every successful Platform API answer is checked against Heroku's official JSON schema,
so the sandbox cannot drift from what api.heroku.com serves. Webhooks are captured with
an httpx.MockTransport; nothing here waits on the wall clock beyond polling.
"""

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from jsonschema import Draft4Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT4

from app.config.services import Service, ServicesConfig
from app.config.settings import get_settings
from app.sandbox import Sandbox, SandboxPipeline, in_process, pipelines_from_services
from app.sandbox.standalone import main
from tests import signing
from tests.conftest import FIXTURES

SCHEMA = json.loads((FIXTURES / "heroku-platform-api-schema.json").read_text())
SCHEMA_URI = "http://api.heroku.com/schema"
REGISTRY: Registry[Any] = Registry().with_resource(SCHEMA_URI, DRAFT4.create_resource(SCHEMA))
FORMATS = FormatChecker(formats=())
HOOK_URL = "http://cascade.test/webhooks/heroku"
SECRET = "s3cret"
MEDIA_TYPE = "application/vnd.heroku+json; version=3"
API_HEADERS = {"Authorization": "Bearer sandbox-token", "Accept": MEDIA_TYPE}
PIPELINES = (
    SandboxPipeline(
        "api",
        (
            ("api-qa01", "development"),
            ("api-st01", "staging"),
            ("api-va01", "production"),
            ("api-eu01", "production"),
        ),
    ),
    SandboxPipeline(
        "web",
        (
            ("web-development", "development"),
            ("web-staging", "staging"),
            ("web-production", "production"),
        ),
    ),
)
Json = dict[str, Any]
T = TypeVar("T")


@FORMATS.checks("uuid", raises=ValueError)
def _uuid_format(value: object) -> bool:
    return not isinstance(value, str) or str(uuid.UUID(value)) == value


@FORMATS.checks("date-time", raises=ValueError)
def _time_format(value: object) -> bool:
    """Heroku's form: ISO 8601 in UTC with `Z`."""
    return not isinstance(value, str) or (
        value.endswith("Z") and bool(datetime.fromisoformat(value))
    )


@FORMATS.checks("email")
def _email_format(value: object) -> bool:
    return not isinstance(value, str) or "@" in value


def schema_pointer(method: str, path: str, body: object = None) -> str:
    """The one link of the schema serving this request: its targetSchema, else its definition.

    Two links of one method and path (a release's Create and Rollback) are told apart by
    the fields each requires of the request's body."""
    found = []
    for name, definition in SCHEMA["definitions"].items():
        for index, link in enumerate(definition.get("links", [])):
            parts = re.split(r"\{[^}]*\}", link["href"])
            pattern = "[^/]+".join(re.escape(part) for part in parts)
            if link["method"] == method and re.fullmatch(pattern, path):
                has_target = "targetSchema" in link
                pointer = (
                    f"#/definitions/{name}/links/{index}/targetSchema"
                    if has_target
                    else f"#/definitions/{name}"
                )
                found.append((pointer, set(link.get("schema", {}).get("required", ()))))
    if len(found) > 1 and isinstance(body, dict):
        found = [(pointer, needs) for pointer, needs in found if needs <= body.keys()]
    assert len(found) == 1, f"{method} {path} matches {found}"
    return found[0][0]


def missing_properties(schema: Json, instance: object, where: str, resolver: Any) -> list[str]:
    """Documented properties absent from the answer: the schema lists none as required."""
    if "$ref" in schema:
        resolved = resolver.lookup(schema["$ref"])
        return missing_properties(resolved.contents, instance, where, resolved.resolver)
    if isinstance(instance, list) and "items" in schema:
        return [
            gap
            for i, item in enumerate(instance)
            for gap in missing_properties(schema["items"], item, f"{where}[{i}]", resolver)
        ]
    if not isinstance(instance, dict):
        return []
    gaps = []
    for key, sub in schema.get("properties", {}).items():
        if key not in instance:
            gaps.append(f"{where}.{key}")
        else:
            gaps += missing_properties(sub, instance[key], f"{where}.{key}", resolver)
    return gaps


def assert_schema(response: httpx.Response) -> str:
    """Validate a Platform API answer against its link in the official schema."""
    request = response.request
    sent = json.loads(request.content) if request.content else None
    pointer = schema_pointer(request.method, request.url.path, sent)
    validator = Draft4Validator(
        {"$ref": SCHEMA_URI + pointer}, registry=REGISTRY, format_checker=FORMATS
    )
    body = response.json()
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, f"{response.request.url.path} against {pointer}: {errors}"
    resolver = REGISTRY.resolver(base_uri=SCHEMA_URI)
    assert not missing_properties({"$ref": pointer}, body, "$", resolver)
    return pointer


def signature(body: bytes) -> str:
    return signing.heroku(body, SECRET)


@dataclass
class Harness:
    """A started sandbox, a Platform API client on it, and the webhooks it sent."""

    sandbox: Sandbox
    api: httpx.AsyncClient
    hooks: list[httpx.Request]
    hook_replies: list[int | type[Exception]]  # answered in turn, then 204
    validated: set[str] = field(default_factory=set)

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A Platform API call; every successful answer must match the schema."""
        response = await self.api.request(method, path, **kwargs)
        assert uuid.UUID(response.headers["Request-Id"])
        if response.is_success:
            self.validated.add(assert_schema(response))
        return response

    async def json(self, path: str) -> Any:
        response = await self.call("GET", path)
        assert response.status_code == 200, response.text
        return response.json()

    async def id_of(self, app: str) -> str:
        return str((await self.json(f"/apps/{app}"))["id"])

    async def pipeline_id(self, name: str = "api") -> str:
        return str((await self.json(f"/pipelines/{name}"))["id"])

    async def promote(
        self, source: str, targets: list[str], release_id: str | None = None
    ) -> httpx.Response:
        body: Json = {
            "pipeline": {"id": await self.pipeline_id(source.split("-")[0])},
            "source": {"app": {"id": await self.id_of(source)}},
            "targets": [{"app": {"id": await self.id_of(t)}} for t in targets],
        }
        if release_id:
            body["source"]["release"] = {"id": release_id}
        return await self.call("POST", "/pipeline-promotions", json=body)

    async def completed(self, promotion_id: str) -> list[Json]:
        """Poll the promotion as the CLI does until it completes; its targets."""

        async def done() -> list[Json] | None:
            info = await self.json(f"/pipeline-promotions/{promotion_id}")
            targets = await self.json(f"/pipeline-promotions/{promotion_id}/promotion-targets")
            return targets if info["status"] == "completed" else None

        return await eventually(done, f"promotion {promotion_id}")

    async def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.api.request(method, path, headers={"Authorization": ""}, **kwargs)

    async def state(self) -> Json:
        response = await self.control("GET", "/_sandbox/state")
        assert response.status_code == 200
        state: Json = response.json()
        return state

    async def settled(self, app: str, version: int) -> Json:
        """The app once release `version` is no longer pending."""

        async def check() -> Json | None:
            entry: Json = (await self.state())["apps"][app]
            done = entry["latest_version"] >= version and version not in entry["pending_versions"]
            return entry if done else None

        return await eventually(check, f"{app} v{version} to finish")

    def delivered(self) -> list[Json]:
        """Webhook bodies the receiver accepted (answered 2xx), in order."""
        return [json.loads(r.content) for r in self.hooks if r.extensions.get("accepted")]


async def eventually(check: Callable[[], Awaitable[T | None]], what: str) -> T:
    """Poll `check` until it returns something: the sandbox's clock is its own."""
    for _ in range(1000):
        if (value := await check()) is not None:
            return value
        await asyncio.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


MakeSandbox = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def make_sandbox() -> AsyncIterator[MakeSandbox]:
    async with AsyncExitStack() as stack:

        async def make(
            pipelines: tuple[SandboxPipeline, ...] = PIPELINES, **options: Any
        ) -> Harness:
            hooks: list[httpx.Request] = []
            replies: list[int | type[Exception]] = []

            def receive(request: httpx.Request) -> httpx.Response:
                hooks.append(request)
                reply = replies.pop(0) if replies else 204
                if not isinstance(reply, int):
                    raise reply("the receiver is down")
                request.extensions["accepted"] = 200 <= reply < 300
                return httpx.Response(reply)

            options = {
                "webhook_url": HOOK_URL,
                "webhook_secret": SECRET,
                "webhook_transport": httpx.MockTransport(receive),
                "release_seconds": 0.05,
                "webhook_retry_delays": (0.01, 0.01),
                **options,
            }
            sandbox = Sandbox(pipelines, **options)
            await sandbox.start()
            stack.push_async_callback(sandbox.stop)
            api = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=sandbox.app),
                base_url="https://api.heroku.com",
                headers=API_HEADERS,
            )
            stack.push_async_callback(api.aclose)
            return Harness(sandbox, api, hooks, replies)

        yield make


@pytest.fixture
async def heroku(make_sandbox: MakeSandbox) -> Harness:
    return await make_sandbox()


def test_pipelines_from_services_couples_first_development_second_staging_rest_production() -> None:
    config = ServicesConfig(
        path=Path("cascade.toml"),
        services=(
            Service("api", "api", stages=("api-qa01", "api-st01", "api-va01", "api-eu01")),
            Service("web", "web-pipeline"),
            Service("api-copy", "api", stages=("other",)),  # same pipeline: the first wins
        ),
    )
    assert pipelines_from_services(config) == (
        SandboxPipeline(
            "api",
            (
                ("api-qa01", "development"),
                ("api-st01", "staging"),
                ("api-va01", "production"),
                ("api-eu01", "production"),
            ),
        ),
        SandboxPipeline(
            "web-pipeline",
            (
                ("web-development", "development"),
                ("web-staging", "staging"),
                ("web-production", "production"),
            ),
        ),
    )


async def test_initially_every_stage_runs_the_same_old_commit(heroku: Harness) -> None:
    apps = (await heroku.state())["apps"]
    commits = {name: entry["current"]["commit"] for name, entry in apps.items()}
    assert len({commits[a] for a, _ in PIPELINES[0].apps}) == 1
    assert len({commits[a] for a, _ in PIPELINES[1].apps}) == 1
    assert commits["api-qa01"] != commits["web-development"]
    for name, entry in apps.items():
        assert (entry["current"]["version"], entry["pending"]) == (1, None), name
        releases = await heroku.json(f"/apps/{name}/releases")
        assert [(r["version"], r["status"], r["current"]) for r in releases] == [
            (1, "succeeded", True)
        ]
        created = datetime.fromisoformat(releases[0]["created_at"])
        assert created < datetime.now(UTC) - timedelta(hours=1)


async def test_every_platform_endpoint_matches_the_schema(heroku: Harness) -> None:
    pipeline = await heroku.json("/pipelines/api")
    assert await heroku.json(f"/pipelines/{pipeline['id']}") == pipeline
    couplings = await heroku.json(f"/pipelines/{pipeline['id']}/pipeline-couplings")
    assert [c["stage"] for c in couplings] == ["development", "staging", "production", "production"]
    qa = await heroku.json(f"/apps/{couplings[0]['app']['id']}")
    assert qa["name"] == "api-qa01"
    coupling = await heroku.json("/apps/api-qa01/pipeline-couplings")
    assert coupling["pipeline"] == {"id": pipeline["id"], "name": "api"}
    deployed = await heroku.sandbox.deploy("api-qa01", "a" * 40)
    latest = await heroku.json(f"/pipelines/{pipeline['id']}/latest-releases")
    assert [(r["app"]["name"], r["version"]) for r in latest][:2] == [
        ("api-qa01", 2),
        ("api-st01", 1),
    ]
    assert latest[0]["status"] == "pending"  # the newest by version, pending or not
    releases = await heroku.json("/apps/api-qa01/releases")
    by_id = await heroku.json(f"/apps/api-qa01/releases/{deployed['id']}")
    assert await heroku.json("/apps/api-qa01/releases/2") == by_id
    slug = await heroku.json(f"/apps/api-qa01/slugs/{by_id['slug']['id']}")
    assert slug["commit"] == "a" * 40
    await heroku.settled("api-qa01", 2)
    created = await heroku.promote("api-qa01", ["api-st01"])
    assert created.status_code == 201
    await heroku.completed(created.json()["id"])
    assert (await heroku.json("/account/rate-limits"))["remaining"] > 0
    assert len(releases) == 2
    assert {pointer.split("/")[2] for pointer in heroku.validated} == {
        "pipeline",
        "pipeline-coupling",
        "pipeline-release",
        "app",
        "release",
        "slug",
        "pipeline-promotion",
        "pipeline-promotion-target",
        "rate-limit",
    }
    assert len(heroku.validated) == 12  # every link above, each validated


async def test_pipeline_is_found_by_name_or_id_but_its_lists_only_by_id(
    make_sandbox: MakeSandbox,
) -> None:
    pipeline_id = str(uuid.uuid4())
    heroku = await make_sandbox((SandboxPipeline(pipeline_id, (("x-qa", "development"),)),))
    assert (await heroku.json(f"/pipelines/{pipeline_id}"))["id"] == pipeline_id
    api = await make_sandbox()
    assert (await api.call("GET", "/pipelines/api/pipeline-couplings")).status_code == 404
    assert (await api.call("GET", "/pipelines/api/latest-releases")).status_code == 404


FIR_PIPELINE = SandboxPipeline("fir", (("fir-qa", "development"), ("fir-st", "staging")), fir=True)
DOCKER_PIPELINE = SandboxPipeline(
    "box",
    (("box-qa", "development"), ("box-st", "staging")),
    container=frozenset({"box-qa"}),
)


async def test_a_fir_pipeline_runs_oci_images_and_its_promotions_copy_them(
    make_sandbox: MakeSandbox,
) -> None:
    heroku = await make_sandbox((FIR_PIPELINE,))
    assert (await heroku.json("/pipelines/fir"))["generation"]["name"] == "fir"
    assert (await heroku.json("/apps/fir-qa"))["generation"]["name"] == "fir"
    commit = "f" * 40
    await heroku.sandbox.deploy("fir-qa", commit)
    await heroku.settled("fir-qa", 2)
    source = await heroku.json("/apps/fir-qa/releases/2")
    assert source["slug"] is None
    ((kind, image),) = [(a["type"], a["id"]) for a in source["artifacts"]]
    assert kind == "oci-image"
    (served,) = await heroku.json(f"/apps/fir-qa/oci-images/{image}")
    assert (served["id"], served["commit"]) == (image, commit)
    assert (await heroku.call("GET", f"/apps/fir-qa/slugs/{image}")).status_code == 404

    response = await heroku.promote("fir-qa", ["fir-st"])
    (target,) = await heroku.completed(response.json()["id"])
    landed = await heroku.json(f"/apps/fir-st/releases/{target['release']['id']}")
    assert (landed["slug"], landed["artifacts"]) == (None, source["artifacts"])  # the same image
    assert {p.split("/")[2] for p in heroku.validated} >= {"oci-image", "release", "pipeline"}
    hook = (await eventually(lambda: _some(heroku.delivered(), 1), "a webhook"))[0]
    assert (hook["data"]["slug"], hook["data"]["stack"]) == (None, "cnb")


async def test_an_app_on_the_container_stack_runs_no_build_and_is_never_promoted(
    make_sandbox: MakeSandbox,
) -> None:
    heroku = await make_sandbox((DOCKER_PIPELINE,))
    assert (await heroku.json("/apps/box-qa"))["stack"]["name"] == "container"
    assert (await heroku.json("/apps/box-st"))["stack"]["name"] == "heroku-24"
    (release,) = await heroku.json("/apps/box-qa/releases")
    assert (release["slug"], release["artifacts"]) == (None, [])
    for source, target in (("box-qa", "box-st"), ("box-st", "box-qa")):
        response = await heroku.promote(source, [target])
        assert response.status_code == 422
        assert response.json()["message"] == (
            "Pipeline promotions are not supported for apps using the container stack."
        )
    assert heroku.sandbox.world.promotions == []


def test_pipelines_from_services_makes_the_fir_pipelines_and_container_apps_asked() -> None:
    config = ServicesConfig(
        path=Path("x.toml"),
        services=(Service("api", "api", ("a-qa", "a-st")), Service("web", "web", ("w-qa", "w-st"))),
    )
    api, web = pipelines_from_services(config, fir=["web"], container=["a-st"])
    assert (api.fir, api.container, web.fir, web.container) == (
        False,
        frozenset({"a-st"}),
        True,
        frozenset(),
    )


async def test_promotion_releases_the_source_slug_on_every_target(heroku: Harness) -> None:
    commit = "b" * 40
    source = await heroku.sandbox.deploy("api-qa01", commit)
    await heroku.settled("api-qa01", 2)
    response = await heroku.promote("api-qa01", ["api-st01", "api-va01"])
    assert response.status_code == 201
    promotion = response.json()
    assert promotion["status"] == "pending"
    assert promotion["source"]["release"]["id"] == source["id"]  # default: the current release
    targets = await heroku.completed(promotion["id"])
    assert [t["status"] for t in targets] == ["succeeded", "succeeded"]
    assert {t["error_message"] for t in targets} == {None}
    for target, app in zip(targets, ["api-st01", "api-va01"], strict=True):
        assert target["app"]["id"] == await heroku.id_of(app)
        release = await heroku.json(f"/apps/{app}/releases/{target['release']['id']}")
        assert (release["version"], release["status"], release["current"]) == (2, "succeeded", True)
        assert release["slug"]["id"] == source["slug"]["id"]
        assert release["description"].startswith("Promote api-qa01 v2")
        slug = await heroku.json(f"/apps/{app}/slugs/{release['slug']['id']}")
        assert slug["commit"] == commit
    state = (await heroku.state())["apps"]
    assert [state[a]["current"]["commit"] for a in ("api-st01", "api-va01")] == [commit, commit]
    assert state["api-eu01"]["current"]["version"] == 1


async def test_a_target_has_no_release_while_the_slug_is_copied(
    make_sandbox: MakeSandbox,
) -> None:
    heroku = await make_sandbox(copy_seconds=3600)
    response = await heroku.promote("api-qa01", ["api-st01"])
    promotion_id = response.json()["id"]
    (target,) = await heroku.json(f"/pipeline-promotions/{promotion_id}/promotion-targets")
    assert (target["status"], target["release"]) == ("pending", None)
    (latest,) = [
        r
        for r in await heroku.json(f"/pipelines/{await heroku.pipeline_id()}/latest-releases")
        if r["app"]["name"] == "api-st01"
    ]
    assert (latest["version"], latest["status"]) == (1, "succeeded")  # nothing pending shows


async def test_targets_stay_pending_until_their_release_finishes(heroku: Harness) -> None:
    await heroku.control("POST", "/_sandbox/faults", json={"hold_releases": True})
    response = await heroku.promote("api-qa01", ["api-st01"])
    promotion_id = response.json()["id"]

    async def landed() -> list[Json] | None:  # the slug copied: the target's release exists
        found = await heroku.json(f"/pipeline-promotions/{promotion_id}/promotion-targets")
        return found if found[0]["release"] else None

    targets = await eventually(landed, "the target's release to appear")
    assert [t["status"] for t in targets] == ["pending"]
    assert (await heroku.json(f"/pipeline-promotions/{promotion_id}"))["status"] == "pending"
    pending = await heroku.json(f"/apps/api-st01/releases/{targets[0]['release']['id']}")
    assert (pending["status"], pending["current"]) == ("pending", False)
    assert (await heroku.state())["apps"]["api-st01"]["pending"]["version"] == 2
    await heroku.control("DELETE", "/_sandbox/faults")
    assert [t["status"] for t in await heroku.completed(promotion_id)] == ["succeeded"]


async def test_promotion_honours_the_pinned_release(heroku: Harness) -> None:
    older = await heroku.sandbox.deploy("api-qa01", "c" * 40)
    await heroku.sandbox.deploy("api-qa01", "d" * 40)
    await heroku.settled("api-qa01", 3)
    response = await heroku.promote("api-qa01", ["api-st01"], release_id=older["id"])
    assert response.json()["source"]["release"]["id"] == older["id"]
    await heroku.completed(response.json()["id"])
    assert (await heroku.state())["apps"]["api-st01"]["current"]["commit"] == "c" * 40


PROMOTION_REFUSALS = [
    pytest.param({"pipeline": "unknown"}, 404, id="unknown-pipeline"),
    pytest.param({"pipeline": "name"}, 404, id="pipeline-by-name"),
    pytest.param({"source": "unknown"}, 404, id="unknown-source-app"),
    pytest.param({"targets": ["unknown"]}, 404, id="unknown-target-app"),
    pytest.param({"release": "unknown"}, 404, id="unknown-release"),
    pytest.param({"release": "api-st01"}, 404, id="release-of-another-app"),
    pytest.param({"source": "web-development"}, 422, id="source-outside-pipeline"),
    pytest.param({"targets": ["web-staging"]}, 422, id="target-outside-pipeline"),
    pytest.param({"targets": ["api-qa01"]}, 422, id="target-is-source"),
    pytest.param({"targets": []}, 422, id="no-targets"),
    pytest.param({"source": None}, 422, id="no-source"),
]


@pytest.mark.parametrize(("change", "status"), PROMOTION_REFUSALS)
async def test_promotion_refusals_use_heroku_errors(
    heroku: Harness, change: Json, status: int
) -> None:
    async def ident(app: str) -> str:
        return str(uuid.uuid4()) if app == "unknown" else await heroku.id_of(app)

    pipeline = {"unknown": str(uuid.uuid4()), "name": "api"}.get(change.get("pipeline", ""))
    source = change.get("source", "api-qa01")
    body: Json = {
        "pipeline": {"id": pipeline or await heroku.pipeline_id()},
        "source": {"app": {"id": await ident(source)}} if source else {},
        "targets": [{"app": {"id": await ident(t)}} for t in change.get("targets", ["api-st01"])],
    }
    if release := change.get("release"):
        other = await heroku.json(f"/apps/{release}/releases/1") if release != "unknown" else None
        body["source"]["release"] = {"id": other["id"] if other else str(uuid.uuid4())}
    response = await heroku.call("POST", "/pipeline-promotions", json=body)
    assert response.status_code == status
    error = response.json()
    assert error["id"] == {404: "not_found", 422: "invalid_params"}[status]
    assert error["message"]
    assert (await heroku.control("GET", "/_sandbox/promotions")).json()["promotions"] == []


async def test_promotion_refuses_a_failed_release_and_a_body_that_is_not_json(
    heroku: Harness,
) -> None:
    failed = await heroku.sandbox.deploy("api-qa01", succeed=False)
    await heroku.settled("api-qa01", 2)
    response = await heroku.promote("api-qa01", ["api-st01"], release_id=failed["id"])
    assert (response.status_code, response.json()["id"]) == (422, "invalid_params")
    response = await heroku.call("POST", "/pipeline-promotions", content=b"{not json")
    assert (response.status_code, response.json()["id"]) == (400, "bad_request")


async def test_a_release_rollback_releases_an_older_build_again(heroku: Harness) -> None:
    first = await heroku.json("/apps/api-qa01/releases/1")
    await heroku.sandbox.deploy("api-qa01", "a" * 40)
    await heroku.settled("api-qa01", 2)
    body = {"release": first["id"]}
    response = await heroku.call("POST", "/apps/api-qa01/releases", json=body)
    assert response.status_code == 201, response.text
    made = response.json()
    assert (made["version"], made["slug"]["id"]) == (3, first["slug"]["id"])
    assert made["description"] == "Rollback to v1"
    await heroku.settled("api-qa01", 3)
    assert heroku.sandbox.world.app("api-qa01").current.slug.commit == first_commit(heroku)
    unknown = {"release": str(uuid.uuid4())}
    gone = await heroku.call("POST", "/apps/api-qa01/releases", json=unknown)
    assert (gone.status_code, gone.json()["id"]) == (404, "not_found")
    missing = await heroku.call("POST", "/apps/api-qa01/releases", json={})
    assert missing.status_code == 422


def first_commit(heroku: Harness) -> str:
    return heroku.sandbox.world.app("api-qa01").releases[0].slug.commit


async def test_unknown_resources_are_404_not_found(heroku: Harness) -> None:
    deployed = await heroku.sandbox.deploy("api-qa01")
    nobody = str(uuid.uuid4())
    for path in (
        "/apps/nope",
        "/pipelines/nope",
        f"/pipelines/{nobody}/pipeline-couplings",
        "/apps/api-qa01/releases/99",
        f"/apps/api-qa01/releases/{nobody}",
        f"/apps/api-qa01/slugs/{nobody}",
        f"/apps/api-st01/slugs/{deployed['slug']['id']}",  # that slug never ran there
        f"/pipeline-promotions/{nobody}",
        f"/pipeline-promotions/{nobody}/promotion-targets",
        "/no/such/endpoint",
    ):
        response = await heroku.call("GET", path)
        assert response.status_code == 404, path
        assert response.json()["id"] == "not_found", path
        assert response.json()["message"], path


async def test_releases_paginate_with_206_and_next_range(heroku: Harness) -> None:
    for _ in range(4):
        await heroku.sandbox.deploy("api-qa01")
    versions: list[int] = []
    pages = []
    next_range: str | None = "version ..; order=desc,max=2"
    while next_range:
        response = await heroku.call(
            "GET", "/apps/api-qa01/releases", headers={"Range": next_range}
        )
        pages.append(response.status_code)
        versions += [r["version"] for r in response.json()]
        next_range = response.headers.get("Next-Range")
    assert versions == [5, 4, 3, 2, 1]
    assert pages == [206, 206, 200]
    last = await heroku.call(
        "GET", "/apps/api-qa01/releases", headers={"Range": "version ..; order=desc,max=1"}
    )
    assert [r["version"] for r in last.json()] == [5]
    assert last.headers["Content-Range"] == "version 5..5"
    everything = await heroku.json("/apps/api-qa01/releases")
    assert [r["version"] for r in everything] == [1, 2, 3, 4, 5]
    ids: list[str] = []
    next_range = "id ..; max=3"
    while next_range:
        response = await heroku.call(
            "GET", "/apps/api-qa01/releases", headers={"Range": next_range}
        )
        ids += [r["id"] for r in response.json()]
        next_range = response.headers.get("Next-Range")
    assert ids == sorted(r["id"] for r in everything)
    bad = await heroku.call("GET", "/apps/api-qa01/releases", headers={"Range": "colour ..; max=2"})
    assert (bad.status_code, bad.json()["id"]) == (416, "requested_range_not_satisfiable")


@pytest.mark.parametrize(
    ("headers", "status", "error_id"),
    [
        pytest.param({"Authorization": ""}, 401, "unauthorized", id="no-token"),
        pytest.param({"Authorization": "Basic Zm9vOmJhcg=="}, 401, "unauthorized", id="basic"),
        pytest.param({"Accept": "application/json"}, 406, "not_acceptable", id="plain-json"),
        pytest.param({"Accept": ""}, 406, "not_acceptable", id="no-accept"),
    ],
)
async def test_platform_api_needs_a_token_and_the_v3_media_type(
    heroku: Harness, headers: dict[str, str], status: int, error_id: str
) -> None:
    response = await heroku.call("GET", "/apps/api-qa01", headers=headers)
    assert (response.status_code, response.json()["id"]) == (status, error_id)
    assert (await heroku.control("GET", "/_sandbox/state")).status_code == 200


async def test_rate_limit_pool_is_drawn_on_by_every_call_but_the_rate_limit_one(
    heroku: Harness,
) -> None:
    first = await heroku.call("GET", "/apps/api-qa01")
    second = await heroku.call("GET", "/apps/api-qa01")
    assert int(second.headers["RateLimit-Remaining"]) < int(first.headers["RateLimit-Remaining"])
    assert first.headers["Request-Id"] != second.headers["Request-Id"]
    before = (await heroku.json("/account/rate-limits"))["remaining"]
    assert (await heroku.json("/account/rate-limits"))["remaining"] >= before
    await heroku.control("POST", "/_sandbox/faults", json={"rate_limit_remaining": 0})
    response = await heroku.call("GET", "/apps/api-qa01")
    assert (response.status_code, response.json()["id"]) == (429, "rate_limit")
    assert (await heroku.json("/account/rate-limits"))["remaining"] == 0
    await heroku.control("DELETE", "/_sandbox/faults")
    assert (await heroku.call("GET", "/apps/api-qa01")).status_code == 200


async def test_release_webhooks_are_signed_and_shaped_like_heroku(heroku: Harness) -> None:
    deployed = await heroku.sandbox.deploy("api-qa01", "e" * 40)
    hooks = await eventually(lambda: _some(heroku.hooks, 2), "two webhooks")
    for request in hooks:
        assert (request.method, str(request.url)) == ("POST", HOOK_URL)
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["Heroku-Webhook-Hmac-SHA256"] == signature(request.content)
    create, update = (json.loads(r.content) for r in hooks)
    samples = {
        "create": json.loads((FIXTURES / "heroku" / "zulip-release_pending.json").read_text()),
        "update": json.loads((FIXTURES / "heroku" / "zulip-release_update.json").read_text()),
    }
    for event in (create, update):
        sample = samples[event["action"]]
        assert event.keys() == sample.keys()
        assert event["data"].keys() >= sample["data"].keys()
        assert event["webhook_metadata"].keys() == sample["webhook_metadata"].keys()
        assert event["webhook_metadata"]["event"] == {"id": event["id"], "include": "api:release"}
        assert (event["resource"], event["version"], event["sequence"]) == (
            "release",
            MEDIA_TYPE,
            None,
        )
        assert event["data"]["app"] == {
            "id": deployed["app"]["id"],
            "name": "api-qa01",
            "process_tier": "basic",
        }
        assert event["data"]["slug"]["commit"] == "e" * 40
        assert (event["data"]["id"], event["data"]["version"]) == (deployed["id"], 2)
    assert (create["action"], create["data"]["status"], create["data"]["current"]) == (
        "create",
        "pending",
        False,
    )
    assert (update["action"], update["data"]["status"], update["data"]["current"]) == (
        "update",
        "succeeded",
        True,
    )
    assert create["webhook_metadata"]["delivery"] != update["webhook_metadata"]["delivery"]
    assert create["webhook_metadata"]["webhook"] == update["webhook_metadata"]["webhook"]


async def test_promotion_targets_send_create_then_update(heroku: Harness) -> None:
    response = await heroku.promote("api-qa01", ["api-st01", "api-va01"])
    await heroku.completed(response.json()["id"])
    events = await eventually(lambda: _some(heroku.delivered(), 4), "four webhooks")
    for app in ("api-st01", "api-va01"):
        mine = [
            (e["action"], e["data"]["status"]) for e in events if e["data"]["app"]["name"] == app
        ]
        assert mine == [("create", "pending"), ("update", "succeeded")]


async def test_failed_deliveries_are_retried_in_order(heroku: Harness) -> None:
    heroku.hook_replies.extend([500, httpx.ConnectError])
    await heroku.sandbox.deploy("api-qa01")
    events = await eventually(lambda: _some(heroku.delivered(), 2), "two accepted webhooks")
    assert [e["action"] for e in events] == ["create", "update"]
    attempts = [json.loads(r.content) for r in heroku.hooks]
    assert [a["action"] for a in attempts] == ["create", "create", "create", "update"]
    assert len({a["webhook_metadata"]["delivery"]["id"] for a in attempts[:3]}) == 1
    assert len({a["webhook_metadata"]["attempt"]["id"] for a in attempts[:3]}) == 3
    deliveries = (await heroku.control("GET", "/_sandbox/webhooks")).json()["deliveries"]
    assert [(d["action"], d["status"], d["attempts"]) for d in deliveries] == [
        ("create", "succeeded", 3),
        ("update", "succeeded", 1),
    ]


async def test_a_receiver_that_always_fails_never_stops_the_sandbox(heroku: Harness) -> None:
    heroku.hook_replies.extend([RuntimeError] * 6)
    await heroku.sandbox.deploy("api-qa01")
    await heroku.settled("api-qa01", 2)

    async def given_up() -> list[Json] | None:
        deliveries = (await heroku.control("GET", "/_sandbox/webhooks")).json()["deliveries"]
        done = [d for d in deliveries if d["status"] != "pending"]
        return deliveries if len(done) == 2 else None

    deliveries = await eventually(given_up, "both deliveries to be given up")
    assert [(d["status"], d["attempts"]) for d in deliveries] == [("failed", 3), ("failed", 3)]
    assert "RuntimeError" in deliveries[0]["last_error"]
    await heroku.sandbox.deploy("api-qa01")
    assert len(await eventually(lambda: _some(heroku.delivered(), 2), "later webhooks")) == 2


async def test_without_a_webhook_url_nothing_is_sent(make_sandbox: MakeSandbox) -> None:
    heroku = await make_sandbox(webhook_url=None)
    await heroku.sandbox.deploy("api-qa01")
    assert (await heroku.settled("api-qa01", 2))["current"]["version"] == 2
    assert heroku.hooks == []


async def test_error_faults_answer_matching_requests_then_stop(heroku: Harness) -> None:
    fault = {"method": "GET", "path_prefix": "/apps/api-qa01", "status": 503, "count": 2}
    await heroku.control("POST", "/_sandbox/faults", json={"errors": [fault]})
    statuses = []
    for path in ("/apps/api-qa01", "/apps/api-st01", "/apps/api-qa01/releases", "/apps/api-qa01"):
        response = await heroku.call("GET", path)
        statuses.append(response.status_code)
        if response.status_code == 503:
            assert response.json()["id"] == "service_unavailable"
            assert response.headers["Request-Id"]
    assert statuses == [503, 200, 503, 200]
    await heroku.control("POST", "/_sandbox/faults", json={"errors": [fault]})
    await heroku.control("DELETE", "/_sandbox/faults")
    assert (await heroku.call("GET", "/apps/api-qa01")).status_code == 200


async def test_fail_promotions_fails_the_next_promotions_targets(heroku: Harness) -> None:
    await heroku.control("POST", "/_sandbox/faults", json={"fail_promotions": 1})
    failed = await heroku.promote("api-qa01", ["api-st01"])
    targets = await heroku.completed(failed.json()["id"])
    assert targets[0]["status"] == "failed"
    assert targets[0]["error_message"]
    release = await heroku.json(f"/apps/api-st01/releases/{targets[0]['release']['id']}")
    assert (release["status"], release["current"]) == ("failed", False)
    assert (await heroku.state())["apps"]["api-st01"]["current"]["version"] == 1
    updates = await eventually(lambda: _some(heroku.delivered(), 2), "webhooks")
    assert updates[1]["data"]["status"] == "failed"
    again = await heroku.promote("api-qa01", ["api-st01"])
    assert [t["status"] for t in await heroku.completed(again.json()["id"])] == ["succeeded"]


async def test_a_delayed_answer_leaves_the_promotion_running_when_the_caller_dies(
    heroku: Harness,
) -> None:
    await heroku.control("POST", "/_sandbox/faults", json={"promotion_response_delay": 3600})
    caller = asyncio.create_task(heroku.promote("api-qa01", ["api-st01"]))

    async def recorded() -> list[Json] | None:
        promotions = (await heroku.control("GET", "/_sandbox/promotions")).json()["promotions"]
        return promotions or None

    (promotion,) = await eventually(recorded, "the promotion to exist")
    assert not caller.done()
    caller.cancel()  # the caller is killed right after its POST
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert [t["status"] for t in await heroku.completed(promotion["id"])] == ["succeeded"]
    await heroku.control("POST", "/_sandbox/faults", json={"promotion_response_delay": 0.01})
    answered = await heroku.promote("api-qa01", ["api-va01"])
    assert answered.status_code == 201


async def test_control_endpoints_deploy_and_report(heroku: Harness) -> None:
    commit = "f" * 40
    response = await heroku.control(
        "POST", "/_sandbox/releases", json={"app": "api-qa01", "commit": commit, "status": "failed"}
    )
    assert response.status_code == 201
    assert (response.json()["status"], response.json()["slug"]["commit"]) == ("pending", commit)
    qa = await heroku.settled("api-qa01", 2)
    assert (qa["current"]["version"], qa["pending"]) == (1, None)
    assert (await heroku.json("/apps/api-qa01/releases/2"))["status"] == "failed"
    unknown = await heroku.control("POST", "/_sandbox/releases", json={"app": "nope"})
    assert unknown.status_code == 404
    third = await heroku.control("POST", "/_sandbox/releases", json={"app": "api-qa01"})
    await heroku.settled("api-qa01", 3)
    promoted = await heroku.promote("api-qa01", ["api-st01"])
    (record,) = (await heroku.control("GET", "/_sandbox/promotions")).json()["promotions"]
    assert record["id"] == promoted.json()["id"]
    assert record["request"]["targets"] == [{"app": {"id": await heroku.id_of("api-st01")}}]
    assert (record["source_app"], record["release_version"]) == ("api-qa01", 3)
    assert record["target_apps"] == ["api-st01"]
    assert record["commit"] == third.json()["slug"]["commit"] != commit
    log = (await heroku.control("GET", "/_sandbox/requests")).json()["requests"]
    posts = [(e["method"], e["status"]) for e in log if e["path"] == "/pipeline-promotions"]
    assert posts == [("POST", 201)]
    assert not any(entry["path"].startswith("/_sandbox") for entry in log)
    faults = (await heroku.control("GET", "/_sandbox/faults")).json()
    assert (faults["fail_promotions"], faults["errors"]) == (0, [])


async def test_demo_mode_deploys_on_each_pipelines_first_app(make_sandbox: MakeSandbox) -> None:
    heroku = await make_sandbox(deploy_every=0.01)

    async def deployed() -> Json | None:
        apps = (await heroku.state())["apps"]
        firsts = (apps["api-qa01"]["latest_version"], apps["web-development"]["latest_version"])
        return apps if min(firsts) >= 2 else None

    apps = await eventually(deployed, "demo deploys")
    assert apps["api-st01"]["latest_version"] == apps["web-staging"]["latest_version"] == 1


async def test_the_lifespan_starts_and_stops_the_sandbox() -> None:
    received: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(204)

    sandbox = Sandbox(
        PIPELINES,
        webhook_url=HOOK_URL,
        webhook_secret=SECRET,
        webhook_transport=httpx.MockTransport(receive),
        release_seconds=0.01,
    )
    async with sandbox.app.router.lifespan_context(sandbox.app):
        await sandbox.deploy("web-staging")
        await eventually(lambda: _some(received, 2), "webhooks")


async def test_in_process_sandbox_talks_to_cascade_over_asgi_both_ways() -> None:
    cascade = FastAPI()
    received: list[Json] = []

    @cascade.post("/webhooks/heroku", status_code=202)
    async def webhook(request: Request) -> Response:
        body = await request.body()
        assert request.headers["Heroku-Webhook-Hmac-SHA256"] == signature(body)
        received.append(json.loads(body))
        return Response(status_code=202)

    config = ServicesConfig(path=Path("cascade.toml"), services=(Service("api", "api"),))
    sandbox, transport = in_process(
        config, cascade=cascade, webhook_secret=SECRET, release_seconds=0.01
    )
    await sandbox.start()
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://sandbox.invalid", headers=API_HEADERS
        ) as api:
            response = await api.get("/apps/api-development")
            assert assert_schema(response) == "#/definitions/app/links/2/targetSchema"
        await sandbox.deploy("api-development")
        await eventually(lambda: _some(received, 2), "webhooks at Cascade")
    finally:
        await sandbox.stop()
    assert [(e["action"], e["data"]["app"]["name"]) for e in received] == [
        ("create", "api-development"),
        ("update", "api-development"),
    ]


def test_standalone_refuses_to_start_without_a_webhook_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HEROKU_WEBHOOK_SECRET", "")
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exit_:
            main(["--config", "cascade.toml"])
    finally:
        get_settings.cache_clear()
    assert exit_.value.code == 2
    assert "HEROKU_WEBHOOK_SECRET" in capsys.readouterr().err


def test_standalone_serves_the_configured_pipelines(monkeypatch: pytest.MonkeyPatch) -> None:
    config = ServicesConfig(path=Path("x.toml"), services=(Service("api", "api"),))
    served: list[Any] = []
    monkeypatch.setenv("HEROKU_WEBHOOK_SECRET", SECRET)
    monkeypatch.setattr("app.config.services.load_services", lambda path: config)
    monkeypatch.setattr(
        "app.sandbox.standalone.uvicorn.run", lambda app, **kw: served.append((app, kw))
    )
    get_settings.cache_clear()
    try:
        assert main(["--config", "x.toml", "--port", "5999", "--webhook-url", HOOK_URL]) == 0
    finally:
        get_settings.cache_clear()
    ((app, options),) = served
    assert options["port"] == 5999
    assert {r.path for r in app.routes} >= {"/pipelines/{ident}", "/_sandbox/state"}


async def _some(items: list[T], count: int) -> list[T] | None:
    """`items` once it holds `count` entries (polling helper)."""
    return list(items) if len(items) >= count else None


async def test_its_docs_load_swagger_ui_from_the_sandbox_itself(heroku: Harness) -> None:
    """No CDN: `make serve` on a machine with no network shows the sandbox's API too."""
    page = await heroku.control("GET", "/_sandbox/docs")
    assert page.status_code == 200
    assert "://" not in page.text
    assert "/_sandbox/openapi.json" in re.findall(r"url: '([^']*)'", page.text)
    assets = re.findall(r'(?:href|src)="([^"]*)"', page.text)
    assert len(assets) == 3  # the style, the favicon, the script
    for url in assets:
        assert url.startswith("/_sandbox/docs/assets/"), url
        answer = await heroku.control("GET", url)
        assert answer.status_code == 200, url
        assert len(answer.content) > 500, url
