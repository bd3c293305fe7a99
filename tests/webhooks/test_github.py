"""`POST /webhooks/github` (SPEC.md "Webhooks") against Cascade run in-process.

Deliveries are the octokit/webhooks samples of /work/shared/fixtures/github/ (FORMATS.md
§3), signed as GitHub signs them: `sha256=` and the hex HMAC-SHA256 of the raw body in
`X-Hub-Signature-256`, the event in `X-GitHub-Event`, the delivery id in `X-GitHub-Delivery`.
GitHub's REST API is respx with no route: no delivery may cause a call.
"""

import copy
import hashlib
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
import respx

from app.storage import keys
from tests import signing
from tests.conftest import FIXTURES
from tests.inprocess import Cascade, Start, record_enqueues

GITHUB = "https://github.test/api/v3"
SECRET = "It's a Secret to Everybody"
REPO = "Codertocat/Hello-World"  # the samples' repository
SERVICES = """
[[service]]
name = "api"
pipeline = "api"
stages = ["api-qa", "api-st", "api-prod"]
repo = "codertocat/hello-world"
branch = "master"
require_checks = true

[[service]]
name = "web"
pipeline = "web"
stages = ["web-dev", "web-prod"]
repo = "Codertocat/Hello-World"
branch = "main"

[[service]]
name = "docs"
pipeline = "docs"
stages = ["docs-dev", "docs-prod"]
"""
SAMPLES = sorted((FIXTURES / "github").glob("*.json"))
HEAD = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"  # the new branch's head; the status's sha
SUITE_SHA = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
# file -> (status code, answer status, services reconciled)
EXPECTED: dict[str, tuple[int, str, list[str] | None]] = {
    "check_run-completed.json": (202, "ignored", None),
    "check_suite-completed.json": (202, "accepted", ["api"]),
    "ping-payload.json": (200, "accepted", None),
    "push-tag-deleted.json": (202, "ignored", None),
    "push-with-new-branch.json": (202, "accepted", ["api"]),
    "status-payload.json": (202, "accepted", ["api"]),
    "workflow_run-completed.json": (202, "ignored", None),
}
Json = dict[str, Any]


def event_of(path: Path) -> str:
    """`push-with-new-branch.json` is a `push`, `check_suite-completed.json` a `check_suite`."""
    return path.name.split("-")[0]


def sample(name: str) -> Json:
    return load(FIXTURES / "github" / name)


def load(path: Path) -> Json:
    payload: Json = json.loads(path.read_text())
    return payload


def signature(body: bytes, secret: str = SECRET) -> str:
    return signing.github(body, secret)


async def deliver(
    cascade: Cascade,
    event: str,
    payload: Json | bytes,
    delivery: str | None = None,
    secret: str | None = SECRET,
) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": event}
    headers["X-GitHub-Delivery"] = delivery or hashlib.sha1(body).hexdigest()
    if secret is not None:
        headers["X-Hub-Signature-256"] = signature(body, secret)
    return await cascade.client.post("/webhooks/github", content=body, headers=headers)


def answer(response: httpx.Response, status: str, code: int = 202) -> Json:
    assert response.status_code == code, response.text
    body: Json = response.json()
    assert body["status"] == status, body
    return body


class Enqueued(list[str]):
    """The services a delivery asked to reconcile, in order."""


@pytest.fixture
def github() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=GITHUB, assert_all_called=False) as mock:
        yield mock  # no route: a call to GitHub fails the reconcile that makes it


@pytest.fixture
async def cascade(start_cascade: Start, tmp_path: Path, github: respx.MockRouter) -> Cascade:
    config = tmp_path / "services.toml"
    config.write_text(SERVICES)
    return await start_cascade(
        config_path=config, github_webhook_secret=SECRET, github_api_url=GITHUB
    )


@pytest.fixture
def enqueued(cascade: Cascade, monkeypatch: pytest.MonkeyPatch) -> Enqueued:
    seen = Enqueued()
    record_enqueues(cascade, monkeypatch, seen)
    return seen


async def github_keys(client: "redis.Redis") -> list[str]:
    return sorted(str(key) for key in await client.keys(f"{keys.PREFIX}:github:*"))


# the samples -------------------------------------------------------------------------------


def test_every_sample_has_an_expectation() -> None:
    assert sorted(EXPECTED) == [p.name for p in SAMPLES]


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
async def test_every_sample(
    cascade: Cascade, enqueued: Enqueued, redis_client: "redis.Redis", path: Path
) -> None:
    code, status, services = EXPECTED[path.name]
    body = answer(await deliver(cascade, event_of(path), load(path)), status, code)
    assert body["services"] == services
    assert enqueued == (services or [])
    assert "github" in await cascade.runtime.store.last_heard()
    await cascade.settle()
    if status == "ignored" or event_of(path) == "ping":
        assert await github_keys(redis_client) == []


async def test_ping_is_answered(cascade: Cascade) -> None:
    body = answer(await deliver(cascade, "ping", sample("ping-payload.json")), "accepted", 200)
    assert body["detail"] == "pong: Anything added dilutes everything else."


async def test_a_push_records_its_commits_on_the_branch(
    cascade: Cascade, redis_client: "redis.Redis"
) -> None:
    body = answer(await deliver(cascade, "push", sample("push-with-new-branch.json")), "accepted")
    assert body["detail"] == f"push to master of {REPO}: 6113728, 1 commits"
    assert await redis_client.get(keys.github_on_branch(REPO, 0, "master", HEAD)) == "1"
    assert await redis_client.get(keys.github_pushes(REPO, "master")) == "1"
    # a new branch has no `before`: nothing is recorded as its head's ancestor
    assert await redis_client.get(keys.github_parent(REPO, 0, "master", HEAD)) is None


async def test_a_status_is_recorded_for_its_commit(
    cascade: Cascade, redis_client: "redis.Redis"
) -> None:
    body = answer(await deliver(cascade, "status", sample("status-payload.json")), "accepted")
    assert body["detail"] == "default success on 6113728"
    recorded = await redis_client.hgetall(keys.github_checks(REPO, HEAD))
    assert list(recorded) == ["status:default"]
    assert str(recorded["status:default"]).endswith("|success|default")


async def test_a_check_suite_is_recorded_for_its_commit(
    cascade: Cascade, redis_client: "redis.Redis"
) -> None:
    payload = sample("check_suite-completed.json")
    body = answer(await deliver(cascade, "check_suite", payload), "accepted")
    assert body["detail"] == "octocoders-linter success on ec26c3e"
    recorded = await redis_client.hgetall(keys.github_checks(REPO, SUITE_SHA))
    assert str(recorded["suite:118578147"]).endswith("|success|octocoders-linter")


# which services a delivery concerns ------------------------------------------------------------


def push_to(branch: str, **changes: Any) -> Json:
    payload = sample("push-with-new-branch.json")
    payload["ref"] = f"refs/heads/{branch}"
    payload.update(changes)
    return payload


@pytest.mark.parametrize(
    ("payload", "services"),
    [
        pytest.param(push_to("master"), ["api"], id="the-branch-of-api"),
        pytest.param(push_to("main"), ["web"], id="the-branch-of-web"),
        pytest.param(push_to("master", forced=True), ["api", "web"], id="forced-every-service"),
        pytest.param(
            push_to("main", deleted=True, after="0" * 40, head_commit=None, commits=[]),
            ["api", "web"],
            id="deleted-every-service",
        ),
    ],
)
async def test_a_push_concerns_the_services_that_follow_its_branch(
    cascade: Cascade, enqueued: Enqueued, payload: Json, services: list[str]
) -> None:
    body = answer(await deliver(cascade, "push", payload), "accepted")
    assert body["services"] == services
    assert sorted(enqueued) == services


async def test_a_forced_push_voids_the_repositorys_cache(
    cascade: Cascade, redis_client: "redis.Redis"
) -> None:
    answer(await deliver(cascade, "push", push_to("master")), "accepted")
    new = {"id": "f" * 40}
    forced = push_to(
        "master", forced=True, before=HEAD, after="f" * 40, head_commit=new, commits=[new]
    )
    body = answer(await deliver(cascade, "push", forced), "accepted")
    assert "forced push to master" in body["detail"]
    assert await redis_client.get(keys.github_generation(REPO)) == "1"
    assert await redis_client.get(keys.github_on_branch(REPO, 1, "master", "f" * 40)) == "1"
    assert await redis_client.get(keys.github_on_branch(REPO, 1, "master", HEAD)) is None


@pytest.mark.parametrize(
    ("event", "payload", "why"),
    [
        pytest.param(
            "push", push_to("feature"), "no service follows feature", id="unfollowed-branch"
        ),
        pytest.param(
            "push",
            push_to("feature", forced=True),
            "no service follows feature",
            id="forced-push-to-an-unfollowed-branch",
        ),
        pytest.param(
            "push",
            {**push_to("master"), "repository": {"full_name": "acme/other"}},
            "acme/other is the repo of no configured service",
            id="another-repo",
        ),
        pytest.param(
            "status",
            {**sample("status-payload.json"), "context": "cascade/api-st"},
            "Cascade's own status",
            id="cascade-own-status",
        ),
        pytest.param(
            "status",
            {**sample("status-payload.json"), "repository": {"full_name": "acme/other"}},
            "no service of acme/other has require_checks",
            id="status-no-service-checks",
        ),
        pytest.param(
            "check_suite",
            {**sample("check_suite-completed.json"), "action": "requested"},
            "only completed suites matter",
            id="suite-not-completed",
        ),
        pytest.param("issues", {"action": "opened"}, "not used", id="other-event"),
    ],
)
async def test_what_does_not_matter_is_ignored(
    cascade: Cascade,
    enqueued: Enqueued,
    redis_client: "redis.Redis",
    event: str,
    payload: Json,
    why: str,
) -> None:
    body = answer(await deliver(cascade, event, payload), "ignored")
    assert why in body["detail"]
    assert enqueued == []
    assert await github_keys(redis_client) == []


# repeats ---------------------------------------------------------------------------------------


async def test_the_same_delivery_twice_is_a_duplicate(
    cascade: Cascade, enqueued: Enqueued, redis_client: "redis.Redis"
) -> None:
    payload = sample("push-with-new-branch.json")
    answer(await deliver(cascade, "push", payload, delivery="d-1"), "accepted")
    answer(await deliver(cascade, "push", payload, delivery="d-1"), "duplicate")
    assert enqueued == ["api"]
    assert await redis_client.get(keys.github_pushes(REPO, "master")) == "1"
    answer(await deliver(cascade, "push", payload, delivery="d-2"), "accepted")  # a new delivery
    assert await redis_client.get(keys.github_pushes(REPO, "master")) == "2"


async def test_a_delivery_that_failed_to_record_is_taken_again(
    cascade: Cascade, monkeypatch: pytest.MonkeyPatch, redis_client: "redis.Redis"
) -> None:
    payload = sample("push-with-new-branch.json")
    view = cascade.runtime.views.github
    record = view.record_push

    async def broken(*args: Any) -> None:
        raise RuntimeError("Redis went away")

    monkeypatch.setattr(view, "record_push", broken)
    with pytest.raises(RuntimeError):
        await deliver(cascade, "push", payload, delivery="d-1")
    monkeypatch.setattr(view, "record_push", record)
    answer(await deliver(cascade, "push", payload, delivery="d-1"), "accepted")
    assert await redis_client.get(keys.github_pushes(REPO, "master")) == "1"


# what is refused ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "secret",
    [pytest.param(None, id="no-signature"), pytest.param("not the secret", id="wrong-secret")],
)
async def test_a_bad_signature_is_401_and_changes_nothing(
    cascade: Cascade, enqueued: Enqueued, redis_client: "redis.Redis", secret: str | None
) -> None:
    response = await deliver(cascade, "push", sample("push-with-new-branch.json"), secret=secret)
    assert response.status_code == 401, response.text
    assert "X-Hub-Signature-256" in response.json()["detail"]
    assert enqueued == []
    assert await github_keys(redis_client) == []
    assert "github" not in await cascade.runtime.store.last_heard()


async def test_without_a_secret_every_delivery_is_401(
    start_cascade: Start, tmp_path: Path, github: respx.MockRouter, redis_client: "redis.Redis"
) -> None:
    config = tmp_path / "services.toml"
    config.write_text(SERVICES)
    cascade = await start_cascade(config_path=config, github_api_url=GITHUB)
    for path in SAMPLES:
        response = await deliver(cascade, event_of(path), load(path))
        assert response.status_code == 401, response.text
        assert "GITHUB_WEBHOOK_SECRET is not set" in response.json()["detail"]
    assert await github_keys(redis_client) == []
    assert "github" not in await cascade.runtime.store.last_heard()


async def test_malformed_json_is_400(cascade: Cascade, redis_client: "redis.Redis") -> None:
    response = await deliver(cascade, "push", b'{"ref": ')
    assert response.status_code == 400, response.text
    assert "not valid JSON" in response.json()["detail"]
    assert await github_keys(redis_client) == []


async def test_a_body_over_1_mib_is_413(cascade: Cascade) -> None:
    payload = push_to("master", padding="x" * (1024 * 1024))
    response = await deliver(cascade, "push", payload, secret="whatever: size comes first")
    assert response.status_code == 413, response.text


def _without(name: str, *path: str) -> Json:
    payload = copy.deepcopy(sample(name))
    node = payload
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return payload


@pytest.mark.parametrize(
    ("event", "payload", "where"),
    [
        pytest.param("push", _without("push-with-new-branch.json", "ref"), "ref", id="push-no-ref"),
        pytest.param(
            "push",
            _without("push-with-new-branch.json", "repository"),
            "repository",
            id="push-no-repository",
        ),
        pytest.param("push", [], "the body", id="push-not-an-object"),
        pytest.param("status", _without("status-payload.json", "sha"), "sha", id="status-no-sha"),
        pytest.param(
            "check_suite",
            _without("check_suite-completed.json", "check_suite", "head_sha"),
            "check_suite.head_sha",
            id="suite-no-head-sha",
        ),
    ],
)
async def test_a_delivery_of_the_wrong_shape_is_422(
    cascade: Cascade, redis_client: "redis.Redis", event: str, payload: Any, where: str
) -> None:
    body = payload if isinstance(payload, dict) else None
    response = await deliver(
        cascade, event, body if body is not None else json.dumps(payload).encode()
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(f"not a GitHub {event} event: {where}")
    assert await github_keys(redis_client) == []


# GitHub's other content type ------------------------------------------------------------------


def form_encoded(payload: Json) -> bytes:
    """GitHub's `application/x-www-form-urlencoded` delivery: the JSON in a `payload` field."""
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


async def deliver_form(
    cascade: Cascade, event: str, body: bytes, secret: str = SECRET
) -> httpx.Response:
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": hashlib.sha1(body).hexdigest(),
        "X-Hub-Signature-256": signature(body, secret),  # over the raw form body, as GitHub signs
    }
    return await cascade.client.post("/webhooks/github", content=body, headers=headers)


async def test_a_form_encoded_delivery_is_read_like_json(
    cascade: Cascade, enqueued: Enqueued, redis_client: "redis.Redis"
) -> None:
    body = form_encoded(sample("status-payload.json"))
    answered_ = answer(await deliver_form(cascade, "status", body), "accepted")
    assert answered_["detail"] == "default success on 6113728"
    assert enqueued == ["api"]
    assert list(await redis_client.hgetall(keys.github_checks(REPO, HEAD))) == ["status:default"]


async def test_a_form_encoded_ping_is_answered(cascade: Cascade) -> None:
    body = form_encoded(sample("ping-payload.json"))
    answered_ = answer(await deliver_form(cascade, "ping", body), "accepted", 200)
    assert answered_["detail"] == "pong: Anything added dilutes everything else."


async def test_a_form_encoded_delivery_is_signed_over_its_raw_body(
    cascade: Cascade, redis_client: "redis.Redis"
) -> None:
    payload = sample("status-payload.json")
    body = form_encoded(payload)
    # signed over the JSON inside, not over the bytes sent: refused
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-GitHub-Event": "status",
        "X-GitHub-Delivery": "form-1",
        "X-Hub-Signature-256": signature(json.dumps(payload).encode()),
    }
    response = await cascade.client.post("/webhooks/github", content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert await github_keys(redis_client) == []


async def test_a_form_without_a_payload_field_is_400(cascade: Cascade) -> None:
    response = await deliver_form(cascade, "status", b"other=1")
    assert response.status_code == 400, response.text
    assert "payload" in response.json()["detail"]
