"""The github gate in a whole Cascade (in-process, on the sandbox): what is promoted and why not.

GitHub's REST API is respx on a local base URL answering GitHub's compare shape (FORMATS.md
§3); pushes come in as signed webhooks. The acceptance of issue 7: a commit not on the
branch is never promoted and /status says why; a stage running a hotfix the source lacks
is not overwritten; with GitHub unreachable nothing is promoted, and once it is back the
promotion goes ahead by itself.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from tests import signing
from tests.inprocess import Cascade, Start, eventually

GITHUB = "https://github.test/api/v3"
SECRET = "gh-secret"
SERVICES = """
[[service]]
name = "api"
pipeline = "api"
stages = ["api-qa", "api-st", "api-prod"]
repo = "acme/api"
min_age = "0s"
"""
COMMIT, HOTFIX = "c" * 40, "f" * 40
Json = dict[str, Any]


class GitHubPeer:
    """GitHub's compare endpoint: `compares[(base, head)]` is its status; others are 404."""

    def __init__(self) -> None:
        self.compares: dict[tuple[str, str], str] = {}
        self.down = False

    def __call__(self, request: httpx.Request, base: str, head: str) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        status = self.compares.get((base, head))
        if status is None:
            return httpx.Response(404, json={"message": "Not Found"})
        return httpx.Response(200, json={"status": status, "ahead_by": 1, "commits": []})


@pytest.fixture
def github() -> Iterator[GitHubPeer]:
    peer = GitHubPeer()
    with respx.mock(base_url=GITHUB, assert_all_called=False) as mock:
        mock.get(path__regex=r"/repos/acme/api/compare/(?P<base>\w+)\.\.\.(?P<head>\w+)").mock(
            side_effect=peer
        )
        yield peer


@pytest.fixture
async def cascade(start_cascade: Start, tmp_path: Path, github: GitHubPeer) -> Cascade:
    config = tmp_path / "services.toml"
    config.write_text(SERVICES)
    return await start_cascade(
        config_path=config,
        github_api_url=GITHUB,
        github_webhook_secret=SECRET,
        signal_retry_seconds=0.5,  # how soon an unreadable GitHub is asked again
    )


async def deploy(cascade: Cascade, app: str, commit: str) -> None:
    assert cascade.runtime.sandbox is not None
    await cascade.runtime.sandbox.deploy(app, commit)
    await eventually(lambda: runs(cascade, app, commit), f"{commit[:7]} to run on {app}")


async def runs(cascade: Cascade, app: str, commit: str) -> bool:
    return await cascade.stage_commit("api", app) == commit


async def github_gate(cascade: Cascade, to: str, state: str) -> Json | None:
    """The github gate of the promotion into `to`, once it is in `state`."""
    promotions = (await cascade.json("/status/api"))["promotions"]
    for promotion in promotions:
        if promotion["to"] == to:
            gate: Json = next(g for g in promotion["gates"] if g["name"] == "github")
            return {**gate, "promotion": promotion} if gate["state"] == state else None
    return None


async def push(cascade: Cascade, before: str, after: str) -> httpx.Response:
    payload = {
        "ref": "refs/heads/main",
        "before": before,
        "after": after,
        "forced": False,
        "deleted": False,
        "commits": [{"id": after}],
        "head_commit": {"id": after},
        "repository": {"full_name": "acme/api"},
    }
    body = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": after,
        "X-Hub-Signature-256": signing.github(body, SECRET),
    }
    return await cascade.client.post("/webhooks/github", content=body, headers=headers)


async def test_a_commit_not_on_the_branch_waits_until_a_push_puts_it_there(
    cascade: Cascade, github: GitHubPeer
) -> None:
    running = await cascade.stage_commit("api", "api-st")
    assert running is not None
    github.compares[(COMMIT, "main")] = "diverged"
    await deploy(cascade, "api-qa", COMMIT)

    gate = await eventually(lambda: github_gate(cascade, "api-st", "closed"), "the gate closed")
    assert gate["reason"] == "ccccccc is not on main: only commits on main are promoted"
    assert gate["promotion"]["state"] == "blocked"
    assert gate["promotion"]["commit"] == COMMIT
    await cascade.settle()
    assert await runs(cascade, "api-st", running)
    assert cascade.runtime.sandbox is not None
    assert cascade.runtime.sandbox.world.promotions == []

    # The commit is merged: GitHub's push says so, and the compare with the target is asked.
    github.compares[(running, COMMIT)] = "ahead"
    response = await push(cascade, running, COMMIT)
    assert response.status_code == 202, response.text
    assert response.json()["services"] == ["api"]
    await eventually(lambda: runs(cascade, "api-prod", COMMIT), "the commit to reach api-prod")


async def test_a_hotfix_on_the_target_is_not_overwritten(
    cascade: Cascade, github: GitHubPeer
) -> None:
    github.compares[(HOTFIX, "main")] = "diverged"  # made on api-st, not on main
    await deploy(cascade, "api-st", HOTFIX)
    github.compares[(COMMIT, "main")] = "ahead"
    github.compares[(HOTFIX, COMMIT)] = "diverged"
    await deploy(cascade, "api-qa", COMMIT)

    gate = await eventually(lambda: github_gate(cascade, "api-st", "closed"), "the gate closed")
    assert gate["reason"] == (
        "ccccccc and fffffff diverged in acme/api: api-st runs a commit that is not in"
        " ccccccc's history (a hotfix?)"
    )
    assert gate["promotion"]["state"] == "blocked"
    await cascade.settle()
    assert await runs(cascade, "api-st", HOTFIX)


async def test_github_unreachable_blocks_until_it_is_back(
    cascade: Cascade, github: GitHubPeer
) -> None:
    running = await cascade.stage_commit("api", "api-st")
    assert running is not None
    github.down = True
    await deploy(cascade, "api-qa", COMMIT)

    gate = await eventually(lambda: github_gate(cascade, "api-st", "unknown"), "the gate unknown")
    assert gate["reason"].startswith(
        "whether ccccccc is on main is not known: GitHub unreachable: ConnectError"
    )
    assert gate["promotion"]["state"] == "blocked"
    assert await runs(cascade, "api-st", running)

    github.compares[(COMMIT, "main")] = "ahead"
    github.compares[(running, COMMIT)] = "ahead"
    github.down = False  # nobody touches Cascade: its own recheck finds GitHub back
    await eventually(lambda: runs(cascade, "api-st", COMMIT), "the promotion once GitHub is back")
