"""GitHub deployments (`app.notify.deployments`, `app.signals.github.client`) following promotions.

The GitHub peer is respx on a local base URL (unmatched requests fail) that checks every
request against GitHub's REST documentation ("Create a deployment", "Create a deployment
status") and keeps what it was sent. The listener runs on the session's real Redis, fed
audit events; one test runs Cascade in-process on the sandbox, promoting for real.
"""

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
import respx

from app.config.catalog import Catalog
from app.config.services import ConfigError, Service, load_services
from app.notify.deployments import Deployments
from app.signals.github.client import GitHubClient, GitHubError
from app.storage.audit import Event
from tests.inprocess import Start, eventually

GITHUB = "https://github.test/api/v3"
TOKEN = "ghs_0123456789abcdefghij"
PUBLIC_URL = "https://cascade.example.com"
SERVICES = """
[[service]]
name = "api"
pipeline = "api"
stages = ["api-qa", "api-st", "api-prod"]
repo = "acme/api"
github_deployments = true
min_age = "0s"

[[service]]
name = "web"
pipeline = "web"
stages = ["web-dev", "web-prod"]
repo = "acme/web"
commit_statuses = true
min_age = "0s"
"""
COMMIT = "0123456789abcdef0123456789abcdef01234567"
AT = datetime(2026, 5, 1, 12, tzinfo=UTC)
Json = dict[str, Any]
DEPLOYMENT_FIELDS = {  # GitHub's "Create a deployment" body, as Cascade sends it
    "ref": str,
    "environment": str,
    "description": str,
    "auto_merge": bool,
    "required_contexts": list,
    "transient_environment": bool,
    "production_environment": bool,
    "payload": dict,
}
STATUS_FIELDS = {"state": str, "environment": str, "description": str, "log_url": str}
STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}


@dataclass
class GitHubPeer:
    """GitHub's deployments endpoints: checks each request, keeps what it created."""

    deployments: dict[int, Json] = field(default_factory=dict)  # id -> the body that made it
    statuses: list[tuple[int, Json]] = field(default_factory=list)  # (deployment id, body)
    problems: list[str] = field(default_factory=list)  # requests GitHub's docs would refuse
    down: bool = False
    delay: float = 0.0  # how long creating a deployment takes

    async def create(self, request: httpx.Request, owner: str, repo: str) -> httpx.Response:
        body = self._checked(request, DEPLOYMENT_FIELDS, required=set(DEPLOYMENT_FIELDS))
        await asyncio.sleep(self.delay)
        if self.down:
            return httpx.Response(503, json={"message": "Service Unavailable"})
        if not re.fullmatch(r"[0-9a-f]{40}", str(body.get("ref"))):
            self.problems.append(f"ref is not a commit sha: {body.get('ref')!r}")
        if body.get("auto_merge") is not False or body.get("required_contexts") != []:
            self.problems.append("GitHub would merge or wait for checks: a 409 or 202")
        if len(str(body.get("description"))) > 140:
            self.problems.append("description longer than 140")
        number = len(self.deployments) + 1
        self.deployments[number] = {"repo": f"{owner}/{repo}", **body}
        return httpx.Response(201, json={"id": number, "sha": body.get("ref"), "url": "…"})

    def status(self, request: httpx.Request, owner: str, repo: str, number: str) -> httpx.Response:
        body = self._checked(request, STATUS_FIELDS, required={"state"})
        if self.down:
            return httpx.Response(503, json={"message": "Service Unavailable"})
        if int(number) not in self.deployments:
            return httpx.Response(404, json={"message": "Not Found"})
        if body.get("state") not in STATES or len(str(body.get("description"))) > 140:
            self.problems.append(f"a status GitHub refuses: {body}")
        self.statuses.append((int(number), body))
        return httpx.Response(201, json={"id": len(self.statuses), "state": body.get("state")})

    def _checked(self, request: httpx.Request, fields: Json, required: set[str]) -> Json:
        """The JSON body; what GitHub's documentation would refuse goes to `problems`."""
        headers = request.headers
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            self.problems.append("no bearer token")
        if headers.get("Accept") != "application/vnd.github+json":
            self.problems.append(f"Accept: {headers.get('Accept')}")
        if headers.get("X-GitHub-Api-Version") != "2022-11-28":
            self.problems.append(f"X-GitHub-Api-Version: {headers.get('X-GitHub-Api-Version')}")
        if headers.get("Content-Type") != "application/json":
            self.problems.append(f"Content-Type: {headers.get('Content-Type')}")
        body: Json = json.loads(request.content)
        if missing := required - body.keys():
            self.problems.append(f"missing {sorted(missing)}")
        for name, value in body.items():
            if name not in fields or not isinstance(value, fields[name]):
                self.problems.append(f"{name}={value!r} is not a {fields.get(name)}")
        return body

    def states(self, number: int) -> list[str]:
        return [body["state"] for n, body in self.statuses if n == number]


@pytest.fixture
def github() -> Iterator[GitHubPeer]:
    peer = GitHubPeer()
    with respx.mock(base_url=GITHUB, assert_all_called=False) as mock:
        repo = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/deployments"
        mock.post(path__regex=rf"{repo}$").mock(side_effect=peer.create)
        mock.post(path__regex=rf"{repo}/(?P<number>\d+)/statuses$").mock(side_effect=peer.status)
        mock.get(path__regex=r"/repos/[^/]+/[^/]+/compare/").mock(
            return_value=httpx.Response(200, json={"status": "ahead"})
        )  # the github gate, in-process: every commit is on the branch and ahead
        mock.post(path__regex=r"/repos/[^/]+/[^/]+/statuses/").mock(
            return_value=httpx.Response(201, json={"id": 1})
        )  # the web service's commit statuses, in-process
        yield peer
    assert peer.problems == []


Listener = Callable[[], Deployments]


@pytest.fixture
async def listener(redis_client: "redis.Redis", tmp_path: Path) -> AsyncIterator[Listener]:
    """Makes started listeners (processes) on one Redis; each is drained and stopped after."""
    path = tmp_path / "services.toml"
    path.write_text(SERVICES)
    config = load_services(path)
    made: list[Deployments] = []

    async def stages(service: Service) -> Sequence[str] | None:
        return service.stages

    def make() -> Deployments:
        github = GitHubClient(GITHUB, TOKEN)
        deployments = Deployments(github, redis_client, Catalog(config), stages, PUBLIC_URL)
        deployments.start()
        made.append(deployments)
        return deployments

    yield make
    for deployments in made:
        await deployments.stop()


def event(kind: str, target: str = "api-st", service: str = "api", **fields: Any) -> Event:
    return Event(
        kind=kind,
        message=fields.get("message", f"{kind} message"),
        at=AT,
        service=service,
        commit=fields.get("commit", COMMIT),
        source=fields.get("source", "api-qa"),
        target=target,
    )


async def heard(deployments: Deployments, *events: Event) -> None:
    """Each event as the audit trail gives it, then everything queued sent."""
    for each in events:
        await deployments.on_event(each)
    await deployments.stop()


async def test_a_promotion_is_a_deployment_in_progress_then_a_success(
    listener: Listener, github: GitHubPeer
) -> None:
    await heard(listener(), event("promotion.started"), event("promotion.succeeded"))
    assert list(github.deployments) == [1]
    made = github.deployments[1]
    assert made["repo"] == "acme/api"
    assert made["ref"] == COMMIT
    assert made["environment"] == "api-st"
    assert made["production_environment"] is False
    assert made["transient_environment"] is False
    assert made["payload"] == {"service": "api", "source": "api-qa"}
    assert github.statuses == [
        (
            1,
            {
                "state": "in_progress",
                "environment": "api-st",
                "description": "promoting from api-qa",
                "log_url": f"{PUBLIC_URL}/status/api",
            },
        ),
        (
            1,
            {
                "state": "success",
                "environment": "api-st",
                "description": "running on api-st",
                "log_url": f"{PUBLIC_URL}/status/api",
            },
        ),
    ]


async def test_a_failed_promotion_is_a_failure(listener: Listener, github: GitHubPeer) -> None:
    failed = event("promotion.failed", message="Heroku refused it: the slug is gone")
    await heard(listener(), event("promotion.started"), failed)
    assert github.states(1) == ["in_progress", "failure"]
    assert github.statuses[-1][1]["description"] == "Heroku refused it: the slug is gone"


async def test_the_last_stage_is_the_production_environment(
    listener: Listener, github: GitHubPeer
) -> None:
    await heard(
        listener(),
        event("promotion.started", target="api-st"),
        event("promotion.started", target="api-prod", source="api-st"),
    )
    production = {
        d["environment"]: d["production_environment"] for d in github.deployments.values()
    }
    assert production == {"api-st": False, "api-prod": True}


async def test_one_deployment_per_service_target_and_commit(
    listener: Listener, github: GitHubPeer
) -> None:
    github.delay = 0.3  # both processes hear the start while GitHub is still creating it
    first, second = listener(), listener()
    await first.on_event(event("promotion.started"))
    await second.on_event(event("promotion.started"))
    await second.on_event(event("promotion.succeeded"))  # waits for the first's deployment
    await asyncio.gather(first.stop(), second.stop())
    await heard(listener(), event("promotion.started"))  # heard again, later
    assert list(github.deployments) == [1]
    assert github.states(1) == ["in_progress", "success"]
    # Another commit, another target, another service: deployments of their own.
    other = "f" * 40
    await heard(
        listener(),
        event("promotion.started", commit=other),
        event("promotion.started", target="api-prod", source="api-st"),
    )
    assert len(github.deployments) == 3


async def test_a_missed_start_is_made_up_for_at_success(
    listener: Listener, github: GitHubPeer
) -> None:
    await heard(listener(), event("promotion.succeeded"))
    assert [d["environment"] for d in github.deployments.values()] == ["api-st"]
    assert github.states(1) == ["success"]


async def test_github_down_is_logged_and_the_next_event_makes_the_deployment(
    listener: Listener,
    github: GitHubPeer,
    redis_client: "redis.Redis",
    caplog: pytest.LogCaptureFixture,
) -> None:
    github.down = True
    with caplog.at_level(logging.WARNING, logger="app.notify.deployments"):
        await heard(listener(), event("promotion.started"))
    assert github.deployments == {}
    [record] = caplog.records
    assert "GitHub deployment of acme/api@0123456 to api-st: not created" in record.getMessage()
    assert "503" in record.getMessage()
    assert TOKEN not in caplog.text
    assert await redis_client.keys("*github-deployment*") == []  # the claim was given back
    github.down = False  # back: the success creates it
    await heard(listener(), event("promotion.succeeded"))
    assert github.states(1) == ["success"]


async def test_a_halt_marks_the_deployment_failure(listener: Listener, github: GitHubPeer) -> None:
    deployments = listener()
    await deployments.on_event(event("promotion.started", target="api-prod", source="api-st"))
    await deployments.on_event(event("promotion.succeeded", target="api-prod", source="api-st"))
    await deployments.on_event(
        event("promotion.halted", target="api-prod", message="halted: api 5xx rate fired")
    )
    deployments.mark_halted("api", "api-prod", COMMIT, "halted: incident opened")
    await deployments.stop()
    assert github.states(1) == ["in_progress", "success", "failure", "failure"]
    reasons = [body["description"] for _n, body in github.statuses[2:]]
    assert reasons == ["halted: api 5xx rate fired", "halted: incident opened"]


async def test_the_auto_halt_event_marks_the_deployment_failure(
    listener: Listener, github: GitHubPeer
) -> None:
    deployments = listener()
    await deployments.on_event(event("promotion.started", target="api-st", source="api-qa"))
    await deployments.on_event(event("promotion.succeeded", target="api-st", source="api-qa"))
    reason = "auto-halt: alert HighErrorRate started firing 40s after abc1234 reached api-st"
    await deployments.on_event(event("service.halted", target="api-st", message=reason))
    await deployments.stop()
    assert github.states(1) == ["in_progress", "success", "failure"]
    assert github.statuses[2][1]["description"] == reason


async def test_a_service_without_the_setting_makes_none(
    listener: Listener, github: GitHubPeer
) -> None:
    deployments = listener()
    deployments.mark_halted("web", "web-prod", COMMIT, "halted")
    await heard(
        deployments,
        event("promotion.started", service="web", target="web-prod", source="web-dev"),
        event("promotion.succeeded", service="web", target="web-prod", source="web-dev"),
        event("gate.changed"),  # not a promotion
    )
    assert github.deployments == {}
    assert github.statuses == []


# in-process: a promotion on the sandbox ---------------------------------------------------


async def test_promotions_on_the_sandbox_make_deployments(
    start_cascade: Start, tmp_path: Path, github: GitHubPeer
) -> None:
    config = tmp_path / "services.toml"
    config.write_text(SERVICES)
    cascade = await start_cascade(
        config_path=config, github_token=TOKEN, github_api_url=GITHUB, public_url=PUBLIC_URL
    )
    assert cascade.runtime.sandbox is not None
    commit = (await cascade.runtime.sandbox.deploy("api-qa"))["slug"]["commit"]
    web = (await cascade.runtime.sandbox.deploy("web-dev"))["slug"]["commit"]

    async def arrived() -> bool:
        done = [d["id"] for d in _made(github) if d["environment"] == "api-prod"]
        return bool(done) and github.states(done[0])[-1:] == ["success"]

    await eventually(arrived, "a successful deployment to api-prod", 30)
    made = _made(github)
    assert [(d["environment"], d["ref"]) for d in made] == [
        ("api-st", commit),
        ("api-prod", commit),
    ]
    assert [d["production_environment"] for d in made] == [False, True]
    assert [github.states(d["id"]) for d in made] == [["in_progress", "success"]] * 2

    async def web_promoted() -> bool:
        return await cascade.stage_commit("web", "web-prod") == web

    await eventually(web_promoted, "the web commit promoted", 30)
    await cascade.settle()
    assert {d["repo"] for d in _made(github)} == {"acme/api"}  # web: no deployments


async def test_github_down_never_stops_a_promotion(
    start_cascade: Start, tmp_path: Path, github: GitHubPeer, caplog: pytest.LogCaptureFixture
) -> None:
    github.down = True
    config = tmp_path / "services.toml"
    config.write_text(SERVICES)
    cascade = await start_cascade(config_path=config, github_token=TOKEN, github_api_url=GITHUB)
    assert cascade.runtime.sandbox is not None
    commit = (await cascade.runtime.sandbox.deploy("api-qa"))["slug"]["commit"]

    async def promoted() -> bool:
        return await cascade.stage_commit("api", "api-prod") == commit

    with caplog.at_level(logging.WARNING, logger="app.notify.deployments"):
        await eventually(promoted, "the promotions despite GitHub", 30)

        async def logged() -> bool:
            return "to api-prod: not created: GitHub POST" in caplog.text

        await eventually(logged, "the deployment GitHub refused, logged")
    assert github.deployments == {}


def _made(github: GitHubPeer) -> list[Json]:
    return [{"id": number, **body} for number, body in github.deployments.items()]


# the client and the services file -----------------------------------------------------------


async def test_the_client_refuses_an_answer_without_a_deployment() -> None:
    with respx.mock(base_url=GITHUB) as mock:
        mock.post("/repos/acme/api/deployments").mock(
            side_effect=[
                httpx.Response(202, json={"message": "Auto-merged master into topic-branch"}),
                httpx.Response(422, json={"message": "No ref found for: abc"}),
            ]
        )
        client = GitHubClient(GITHUB, TOKEN)
        for expected in ("202 without a deployment id", "422 No ref found for: abc"):
            with pytest.raises(GitHubError, match=expected) as caught:
                await client.create_deployment(
                    "acme/api",
                    "abc",
                    environment="x",
                    description="y",
                    production=False,
                    payload={},
                )
            assert TOKEN not in str(caught.value)
        await client.aclose()


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        pytest.param('repo = "acme/api"\ngithub_deployments = true\n', True, id="on"),
        pytest.param('repo = "acme/api"\n', False, id="off-by-default"),
    ],
)
def test_github_deployments_setting(tmp_path: Path, text: str, wanted: bool) -> None:
    path = tmp_path / "services.toml"
    path.write_text(f'[[service]]\nname = "api"\npipeline = "api"\n{text}')
    [service] = load_services(path).services
    assert service.github_deployments is wanted


def test_github_deployments_need_a_repo(tmp_path: Path) -> None:
    path = tmp_path / "services.toml"
    path.write_text('[[service]]\nname = "api"\npipeline = "api"\ngithub_deployments = true\n')
    with pytest.raises(ConfigError, match=r'"api": field "github_deployments": needs "repo"'):
        load_services(path)
