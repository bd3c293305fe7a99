"""GitHub commit statuses (`app.notify.commit_status`, `app.signals.github.client`) as a commit
moves and waits.

The GitHub peer is respx on a local base URL (unmatched requests fail); Cascade runs
in-process on the sandbox, so the commit really is promoted, then waits on its age gate.
"""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from app.config.services import ConfigError, load_services
from app.notify.commit_status import Status, statuses
from app.signals.github.client import GitHubClient, GitHubError
from app.storage.audit import Event
from tests.inprocess import Cascade, Start, eventually

GITHUB = "https://github.test/api/v3"
TOKEN = "ghs_0123456789abcdefghij"
SERVICES = """
[[service]]
name = "api"
pipeline = "api"
stages = ["api-qa", "api-st", "api-prod"]
repo = "acme/api"
commit_statuses = true
min_age = "0s"
[service.stage_min_age]
"api-prod" = "1h"

[[service]]
name = "web"
pipeline = "web"
stages = ["web-dev", "web-prod"]
repo = "acme/web"
min_age = "0s"
"""
AT = datetime(2026, 5, 1, 12, tzinfo=UTC)
Json = dict[str, Any]


class GitHubPeer:
    """What the statuses endpoint received, in order; answers with `reply`."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, str, Json]] = []  # repo, sha, body
        self.headers: list[httpx.Headers] = []
        self.reply = 201

    def __call__(self, request: httpx.Request, owner: str, repo: str, sha: str) -> httpx.Response:
        self.posted.append((f"{owner}/{repo}", sha, json.loads(request.content)))
        self.headers.append(request.headers)
        body = {"message": "Validation Failed"} if self.reply >= 400 else {"id": 1}
        return httpx.Response(self.reply, json=body)

    def latest(self, sha: str) -> dict[str, tuple[str, str]]:
        """Per context, the last (state, description) posted for `sha`."""
        return {
            b["context"]: (b["state"], b["description"]) for _r, s, b in self.posted if s == sha
        }


@pytest.fixture
def github() -> Iterator[GitHubPeer]:
    peer = GitHubPeer()
    with respx.mock(base_url=GITHUB, assert_all_called=False) as mock:
        mock.post(
            path__regex=r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)/statuses/(?P<sha>\w+)"
        ).mock(side_effect=peer)
        mock.get(path__regex=r"/repos/[^/]+/[^/]+/compare/").mock(
            return_value=httpx.Response(200, json={"status": "ahead"})
        )  # the github gate: every commit is on the branch and ahead of the target's
        yield peer


@pytest.fixture
async def cascade(start_cascade: Start, tmp_path: Path, github: GitHubPeer) -> Cascade:
    config = tmp_path / "services.toml"
    _write(config, SERVICES)
    return await start_cascade(
        config_path=config,
        github_token=TOKEN,
        github_api_url=GITHUB,
        public_url="https://cascade.example.com",
    )


async def deploy(cascade: Cascade, app: str) -> str:
    assert cascade.runtime.sandbox is not None
    commit: str = (await cascade.runtime.sandbox.deploy(app))["slug"]["commit"]
    return commit


async def test_statuses_follow_a_commit_as_it_moves_and_waits(
    cascade: Cascade, github: GitHubPeer
) -> None:
    commit = await deploy(cascade, "api-qa")

    async def waiting_at_prod() -> dict[str, tuple[str, str]] | None:
        latest = github.latest(commit)
        prod = latest.get("cascade/api-prod", ("", ""))
        done = latest.get("cascade/api-st", ("", ""))[0] == "success"
        return latest if done and prod[0] == "pending" else None

    latest = await eventually(waiting_at_prod, "success on api-st, pending on api-prod", 30)
    assert latest["cascade/api-qa"] == ("success", "running on api-qa")
    assert latest["cascade/api-st"] == ("success", "running on api-st")
    _state, description = latest["cascade/api-prod"]
    assert description.startswith("waiting: age: needs 1h in api-st, opens in ")
    assert description.endswith(" UTC)")
    assert len(description) <= 140
    # On the way, api-st was pending while it was promoted.
    st = [
        (b["state"], b["description"])
        for _r, s, b in github.posted
        if b["context"] == "cascade/api-st"
    ]
    assert ("pending", "promoting from api-qa") in st
    assert st[-1] == ("success", "running on api-st")
    # Each status went to the service's repo, linked to its status page, and never twice.
    assert {repo for repo, _s, _b in github.posted} == {"acme/api"}
    assert {b["target_url"] for _r, _s, b in github.posted} == {
        "https://cascade.example.com/status/api"
    }
    said = [(b["context"], b["state"], b["description"]) for _r, _s, b in github.posted]
    assert len(said) == len(set(said))
    headers = github.headers[0]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"] == "application/vnd.github+json"


async def test_a_service_without_commit_statuses_posts_none(
    cascade: Cascade, github: GitHubPeer
) -> None:
    commit = await deploy(cascade, "web-dev")

    async def promoted() -> bool:
        return await cascade.stage_commit("web", "web-prod") == commit

    await eventually(promoted, "the web commit promoted", 30)
    await cascade.settle()
    assert [repo for repo, _s, _b in github.posted if repo != "acme/api"] == []


async def test_a_failed_promotion_is_a_failure_status(cascade: Cascade, github: GitHubPeer) -> None:
    assert cascade.runtime.sandbox is not None
    cascade.runtime.sandbox.faults.fail_promotions = 1
    commit = await deploy(cascade, "api-qa")

    async def failed() -> tuple[str, str] | None:
        st = github.latest(commit).get("cascade/api-st")
        return st if st and st[0] == "failure" else None

    _state, description = await eventually(failed, "a failure status on api-st", 30)
    assert "failed" in description


async def test_github_down_never_stops_a_promotion(cascade: Cascade, github: GitHubPeer) -> None:
    github.reply = 503
    commit = await deploy(cascade, "api-qa")

    async def promoted() -> bool:
        return await cascade.stage_commit("api", "api-st") == commit

    await eventually(promoted, "the promotion despite GitHub", 30)
    registry = cascade.runtime.metrics.registry

    async def counted() -> bool:
        failed = registry.get_sample_value("cascade_commit_statuses_total", {"result": "failed"})
        return bool(failed)

    await eventually(counted, "failed statuses counted")
    github.reply = 201  # back: the next change is posted, what failed is not remembered
    assert cascade.runtime.commit_statuses is not None
    status = Status("api-qa", "success", "running on api-qa")
    assert await cascade.runtime.commit_statuses.post("api", "acme/api", commit, status)
    assert not await cascade.runtime.commit_statuses.post("api", "acme/api", commit, status)


# pure: which statuses an event means ----------------------------------------------------


def event(kind: str, **details: Any) -> Event:
    return Event(
        kind=kind,
        message="m",
        at=AT,
        service="api",
        commit="c" * 40,
        source="api-qa",
        target="api-st",
        details=details,
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(
            event(
                "gate.changed",
                state="waiting",
                gates=[
                    {"name": "allow", "state": "open", "reason": "not paused"},
                    {"name": "age", "state": "closed", "reason": "needs 1h in api-qa"},
                ],
                opens_at="2026-05-01T13:00:00+00:00",
            ),
            [
                Status("api-qa", "success", "running on api-qa"),
                Status(
                    "api-st",
                    "pending",
                    "waiting: age: needs 1h in api-qa (at 2026-05-01 13:00 UTC)",
                ),
            ],
            id="waiting-on-a-gate",
        ),
        pytest.param(
            event("gate.changed", state="blocked", gates=[], reason="v3 is being released"),
            [
                Status("api-qa", "success", "running on api-qa"),
                Status("api-st", "pending", "blocked: v3 is being released"),
            ],
            id="held-by-heroku",
        ),
        pytest.param(
            event("gate.changed", state="failed", gates=[], reason="refused"),
            [
                Status("api-qa", "success", "running on api-qa"),
                Status("api-st", "failure", "promotion failed: refused"),
            ],
            id="failed",
        ),
        pytest.param(
            event("promotion.started"),
            [Status("api-st", "pending", "promoting from api-qa")],
            id="started",
        ),
        pytest.param(
            event("promotion.succeeded"),
            [Status("api-st", "success", "running on api-st")],
            id="succeeded",
        ),
        pytest.param(event("pause.set"), [], id="not-about-a-commit"),
    ],
)
def test_statuses_of_an_event(given: Event, expected: list[Status]) -> None:
    assert statuses(given) == expected
    assert all(s.context == f"cascade/{s.stage}" for s in expected)


# the client -----------------------------------------------------------------------------


async def test_the_client_posts_the_status_and_reports_refusals() -> None:
    with respx.mock(base_url=GITHUB) as mock:
        route = mock.post("/repos/acme/api/statuses/abc").mock(
            side_effect=[httpx.Response(201), httpx.Response(422, json={"message": "No commit"})]
        )
        client = GitHubClient(GITHUB, TOKEN)
        await client.create_status(
            "acme/api", "abc", state="pending", context="cascade/x", description="y" * 200
        )
        body = json.loads(route.calls[0].request.content)
        assert body == {"state": "pending", "context": "cascade/x", "description": "y" * 139 + "…"}
        with pytest.raises(GitHubError) as caught:
            await client.create_status(
                "acme/api", "abc", state="success", context="cascade/x", description="z"
            )
        assert caught.value.status == 422
        assert "No commit" in str(caught.value)
        assert TOKEN not in str(caught.value)
        await client.aclose()


def test_commit_statuses_need_a_repo(tmp_path: Path) -> None:
    config = tmp_path / "services.toml"
    _write(config, '[[service]]\nname = "api"\npipeline = "api"\ncommit_statuses = true\n')
    with pytest.raises(ConfigError, match=r'service "api": field "commit_statuses": needs "repo"'):
        load_services(config)


def _write(path: Path, text: str) -> None:
    path.write_text(text)
