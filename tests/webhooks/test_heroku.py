"""`POST /webhooks/heroku` (SPEC.md "Webhooks") against Cascade run in-process.

Deliveries are the recorded `api:release` samples of /work/shared/fixtures/heroku/
(FORMATS.md §2), pointed at a configured stage app and signed as Heroku signs them:
base64 HMAC-SHA256 of the raw body in `Heroku-Webhook-Hmac-SHA256`.
"""

import copy
import json
import logging
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from fastapi import HTTPException
from redis.exceptions import RedisError

from app.core.models import Artifact, ArtifactKind
from app.webhooks.auth import MAX_BODY, verify_base64_hmac, verify_hex_hmac
from tests.conftest import FIXTURES
from tests.e2e.harness import sign
from tests.factories import refuse_the_platform_token
from tests.inprocess import WEBHOOK_SECRET, Cascade, Json, Start, eventually, observed

SIGNATURE = "Heroku-Webhook-Hmac-SHA256"
STAGE = "api-qa"  # the first stage of the configured service "api"
SAMPLES = sorted((FIXTURES / "heroku").glob("*.json"))
# Heroku's 2016 docs examples: `slug` is null, so the release names no commit.
DOCS_SAMPLES = [p for p in SAMPLES if p.name.startswith("heroku-webhooks-docs-")]
# Every sample is an api:release `create` or `update`, so none is answered `ignored`.


def sample(path: Path, app: str = STAGE) -> Json:
    payload: Json = json.loads(path.read_text())
    payload["data"]["app"]["name"] = app
    return payload


def mercury(app: str = STAGE) -> Json:
    """A real `update`/`succeeded` delivery with a commit (unsplash/mercury)."""
    return sample(FIXTURES / "heroku" / "api-release-update-mercury.json", app)


async def deliver(
    cascade: Cascade,
    payload: Json | bytes,
    secret: str | None = WEBHOOK_SECRET,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    if secret is not None:
        sent[SIGNATURE] = sign(body, secret)
    return await cascade.client.post("/webhooks/heroku", content=body, headers=sent)


def answer(response: httpx.Response, status: str) -> Json:
    assert response.status_code == 202, response.text
    body: Json = response.json()
    assert body["status"] == status, body
    return body


async def stage(cascade: Cascade, app: str = STAGE) -> Json:
    status = await cascade.json("/status/api")
    found: Json = next(s for s in status["stages"] if s["app"] == app)
    return found


# the samples ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
async def test_every_sample_is_accepted(
    cascade: Cascade, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    payload = sample(path)
    data = payload["data"]
    before = await stage(cascade)

    body = answer(await deliver(cascade, payload), "accepted")
    assert body["service"] == "api"
    assert str(data["version"]) in body["detail"]

    await cascade.settle()  # the reconcile the delivery queued ran
    after = await stage(cascade)
    commit = data["slug"]["commit"] if data["slug"] else None
    if data["status"] == "succeeded":
        assert after["release"]["version"] == data["version"]
        assert after["release"]["status"] == "succeeded"
        assert after["commit"] == commit
    elif data["status"] == "pending":
        assert after["pending"]["version"] == data["version"]
        assert after["release"] == before["release"]
    else:  # failed: the stage keeps running what it ran
        assert after == before
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]
    assert (await cascade.client.get("/readyz")).status_code == 200


@pytest.mark.parametrize("path", DOCS_SAMPLES, ids=[p.name for p in DOCS_SAMPLES])
async def test_docs_samples_without_a_slug_do_not_crash(
    cascade: Cascade, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    payload = sample(path)
    assert payload["data"]["slug"] is None
    assert payload["published_at"] is None
    answer(await deliver(cascade, payload), "accepted")
    await cascade.settle()
    status = await cascade.json("/status/api")  # renders a stage whose commit is unknown
    assert [s["app"] for s in status["stages"]] == ["api-qa", "api-st", "api-prod"]
    assert (await cascade.client.get("/status")).status_code == 200
    assert (await cascade.client.get("/events")).status_code == 200
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


async def test_an_accepted_release_is_reconciled_at_once(cascade: Cascade) -> None:
    payload = mercury()
    commit = payload["data"]["slug"]["commit"]
    answer(await deliver(cascade, payload), "accepted")

    async def waiting() -> list[Json] | None:
        promotions: list[Json] = (await cascade.json("/status/api"))["promotions"]
        return promotions or None

    promotions = await eventually(waiting, "the release to be reconciled")
    assert [(p["from"], p["to"], p["commit"]) for p in promotions] == [("api-qa", "api-st", commit)]
    assert promotions[0]["state"] == "waiting"  # min_age is 1h

    async def gate_event() -> list[Json] | None:
        events = await cascade.events(service="api")
        return [e for e in events if e["kind"] == "gate.changed" and e["commit"] == commit]

    await eventually(gate_event, "a gate.changed event for the new commit")


async def test_an_accepted_release_marks_heroku_heard(cascade: Cascade) -> None:
    assert (await cascade.status())["sources"] == []  # refused and ignored ones do not (below)
    answer(await deliver(cascade, mercury()), "accepted")
    (source,) = (await cascade.status())["sources"]
    assert (source["signal"], source["source"], source["how"]) == ("releases", "heroku", "webhook")
    assert source["last_heard"] is not None


# Fir: an OCI image, no slug ------------------------------------------------------------

IMAGE = "0a3bbf43-5fd3-4b89-9a58-3c1a4c1ea16e"


def fir(app: str = STAGE) -> Json:
    """The mercury delivery as a Fir release sends it: `slug` null, the build an OCI image."""
    payload = mercury(app)
    payload["data"]["slug"] = None
    payload["data"]["artifacts"] = [{"type": "oci-image", "id": IMAGE}]
    return payload


async def test_a_fir_release_takes_its_commit_from_the_cached_image(cascade: Cascade) -> None:
    commit = "c" * 40
    await cascade.runtime.store.put(Artifact(ArtifactKind.OCI_IMAGE, IMAGE), commit)
    answer(await deliver(cascade, fir()), "accepted")
    await cascade.settle()
    assert (await stage(cascade))["commit"] == commit


async def test_a_fir_release_of_an_image_not_cached_has_the_pipeline_read_again(
    cascade: Cascade,
) -> None:
    sandbox = cascade.runtime.sandbox
    assert sandbox is not None

    def resyncs() -> int:
        return sum(r["path"].endswith("/latest-releases") for r in sandbox.requests)

    before = resyncs()
    answer(await deliver(cascade, fir()), "accepted")
    await cascade.settle()
    assert (await stage(cascade))["commit"] is None  # unknown until Heroku says: closed
    assert resyncs() == before + 1  # the reconcile the delivery queued asked Heroku


# repeats -------------------------------------------------------------------------------


async def test_the_same_delivery_twice_is_a_duplicate(cascade: Cascade) -> None:
    payload = mercury()
    answer(await deliver(cascade, payload), "accepted")
    await cascade.settle()
    before = await observed(cascade)
    body = answer(await deliver(cascade, payload), "duplicate")
    assert body["service"] == "api"
    assert await observed(cascade) == before


async def test_the_same_release_news_in_another_delivery_is_a_duplicate(cascade: Cascade) -> None:
    first = mercury()
    answer(await deliver(cascade, first), "accepted")
    await cascade.settle()
    before = await observed(cascade)
    again = copy.deepcopy(first)
    again["id"] = "00000000-0000-4000-8000-000000000001"
    again["webhook_metadata"]["delivery"]["id"] = "00000000-0000-4000-8000-000000000002"
    again["webhook_metadata"]["event"]["id"] = again["id"]
    again["webhook_metadata"]["attempt"]["id"] = "00000000-0000-4000-8000-000000000003"
    answer(await deliver(cascade, again), "duplicate")
    assert await observed(cascade) == before


async def test_a_retry_after_redis_failed_mid_delivery_is_taken_in_not_dropped(
    cascade: Cascade, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = cascade.runtime.store
    put_release = store.put_release

    async def fails_once(*args: Any, **kwargs: Any) -> bool:
        monkeypatch.setattr(store, "put_release", put_release)
        raise RedisError("connection lost")

    async def unreachable(*args: Any) -> None:
        raise RedisError("connection lost")

    monkeypatch.setattr(store, "put_release", fails_once)
    monkeypatch.setattr(store, "forget_sighting", unreachable)  # Redis is gone for everything
    payload = mercury()
    assert (await deliver(cascade, payload)).status_code == 503  # Heroku retries a non-2xx
    answer(await deliver(cascade, payload), "accepted")  # the retry is news, not a duplicate
    assert (await stage(cascade))["commit"] == payload["data"]["slug"]["commit"]


async def test_a_new_status_of_the_same_version_is_news(cascade: Cascade) -> None:
    pending = sample(FIXTURES / "heroku" / "zulip-release_pending.json")
    succeeded = sample(FIXTURES / "heroku" / "zulip-release_update.json")
    assert pending["data"]["version"] == succeeded["data"]["version"]
    answer(await deliver(cascade, pending), "accepted")
    answer(await deliver(cascade, succeeded), "accepted")
    await cascade.settle()
    after = await stage(cascade)
    assert after["release"]["version"] == succeeded["data"]["version"]
    assert after["pending"] is None


# what is ignored -------------------------------------------------------------------------


async def test_an_app_of_no_configured_service_is_ignored(cascade: Cascade) -> None:
    before = await observed(cascade)
    payload = mercury(app="my-app")  # the sample's own app name
    body = answer(await deliver(cascade, payload), "ignored")
    assert "my-app" in body["detail"]
    assert await observed(cascade) == before


@pytest.mark.parametrize(
    ("resource", "action"),
    [
        pytest.param("dyno", "create", id="dyno"),
        pytest.param("build", "update", id="build"),
        pytest.param("app", "update", id="app"),
        pytest.param("release", "destroy", id="release-destroy"),
    ],
)
async def test_an_event_that_is_not_a_release_change_is_ignored(
    cascade: Cascade, resource: str, action: str
) -> None:
    before = await observed(cascade)
    payload = mercury()
    payload["resource"], payload["action"] = resource, action
    answer(await deliver(cascade, payload), "ignored")
    assert await observed(cascade) == before


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[]", id="array"),
        pytest.param(b'"release"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"{}", id="empty-object"),
    ],
)
async def test_json_that_is_no_event_is_ignored(cascade: Cascade, raw: bytes) -> None:
    before = await observed(cascade)
    answer(await deliver(cascade, raw), "ignored")
    assert await observed(cascade) == before


# what is refused -------------------------------------------------------------------------


def _without(path: str) -> Json:
    payload = mercury()
    *parents, last = path.split(".")
    node = payload
    for key in parents:
        node = node[key]
    del node[last]
    return payload


def _with(path: str, value: Any) -> Json:
    payload = mercury()
    *parents, last = path.split(".")
    node = payload
    for key in parents:
        node = node[key]
    node[last] = value
    return payload


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(_without("data"), id="no-data"),
        pytest.param(_without("id"), id="no-id"),
        pytest.param(_without("data.version"), id="no-version"),
        pytest.param(_without("data.status"), id="no-status"),
        pytest.param(_without("data.app"), id="no-app"),
        pytest.param(_without("data.app.name"), id="no-app-name"),
        pytest.param(_without("data.created_at"), id="no-created-at"),
        pytest.param(_with("data.version", "six"), id="version-not-a-number"),
        pytest.param(_with("data.status", "exploded"), id="unknown-status"),
        pytest.param(_with("data.created_at", "yesterday"), id="bad-created-at"),
    ],
)
async def test_a_release_missing_what_cascade_reads_is_422(cascade: Cascade, payload: Json) -> None:
    before = await observed(cascade)
    response = await deliver(cascade, payload)
    assert response.status_code == 422, response.text
    assert "detail" in response.json()
    assert await observed(cascade) == before


async def test_wrong_signature_is_401(cascade: Cascade) -> None:
    before = await observed(cascade)
    response = await deliver(cascade, mercury(), secret="not-the-secret")
    assert response.status_code == 401
    assert SIGNATURE in response.json()["detail"]
    assert await observed(cascade) == before


async def test_signature_of_another_body_is_401(cascade: Cascade) -> None:
    before = await observed(cascade)
    body = json.dumps(mercury()).encode()
    other = sign(body + b" ", WEBHOOK_SECRET)
    response = await deliver(cascade, body, secret=None, headers={SIGNATURE: other})
    assert response.status_code == 401
    assert await observed(cascade) == before


@pytest.mark.parametrize("value", [None, ""], ids=["absent", "empty"])
async def test_missing_signature_is_401(cascade: Cascade, value: str | None) -> None:
    before = await observed(cascade)
    headers = {} if value is None else {SIGNATURE: value}
    response = await deliver(cascade, mercury(), secret=None, headers=headers)
    assert response.status_code == 401
    assert "missing" in response.json()["detail"]
    assert await observed(cascade) == before


async def test_a_413_answer_warns_of_nothing(cascade: Cascade) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        response = await deliver(cascade, b" " * (MAX_BODY + 1), secret=None)
    assert response.status_code == 413


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
async def test_body_over_one_mebibyte_is_413(cascade: Cascade, signed: bool) -> None:
    before = await observed(cascade)
    body = b" " * (MAX_BODY + 1)  # size comes first: even unsigned, it is too large
    response = await deliver(cascade, body, secret=WEBHOOK_SECRET if signed else None)
    assert response.status_code == 413
    assert await observed(cascade) == before


async def test_streamed_body_over_one_mebibyte_is_413(cascade: Cascade) -> None:
    """No Content-Length to go by: the body is measured as it is read."""
    before = await observed(cascade)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(17):
            yield b" " * 65536  # 17 chunks of 64 KiB: over 1 MiB

    response = await cascade.client.post("/webhooks/heroku", content=chunks())
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert await observed(cascade) == before


async def test_body_of_exactly_one_mebibyte_is_not_too_large(cascade: Cascade) -> None:
    payload = json.dumps(mercury()).encode()
    body = payload + b" " * (MAX_BODY - len(payload))  # JSON may end in whitespace
    assert len(body) == MAX_BODY
    answer(await deliver(cascade, body), "accepted")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"{not json", id="broken"),
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
    ],
)
async def test_malformed_json_is_400(cascade: Cascade, raw: bytes) -> None:
    before = await observed(cascade)
    response = await deliver(cascade, raw)
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]
    assert await observed(cascade) == before


async def test_authenticity_is_checked_before_json(cascade: Cascade) -> None:
    response = await deliver(cascade, b"{not json", secret="not-the-secret")
    assert response.status_code == 401


@pytest.mark.parametrize("secret", [None, ""], ids=["unset", "empty"])
async def test_with_no_secret_every_delivery_is_refused(
    start_cascade: Start, secret: str | None, respx_mock: respx.MockRouter
) -> None:
    """Not sandboxed (a Platform API token is set) and no HEROKU_WEBHOOK_SECRET: all 401.

    That Platform API refuses the token at once: the reconciler logs that it cannot read
    the pipelines, which does not matter here.
    """
    refuse_the_platform_token(respx_mock)  # at once: no retries with back-off
    cascade = await start_cascade(
        heroku_api_key="x", heroku_api_url="http://127.0.0.1:9", heroku_webhook_secret=secret
    )
    assert cascade.runtime.sandbox is None
    before = await observed(cascade)
    for path in SAMPLES:
        payload = sample(path)
        for signed_with in (None, WEBHOOK_SECRET, ""):
            response = await deliver(cascade, payload, secret=signed_with)
            assert response.status_code == 401, (path.name, signed_with)
            assert "HEROKU_WEBHOOK_SECRET" in response.json()["detail"]
    assert await observed(cascade) == before


async def test_the_sandbox_signs_with_a_secret_of_its_own_when_none_is_set(
    start_cascade: Start,
) -> None:
    cascade = await start_cascade(heroku_webhook_secret=None)
    assert cascade.runtime.sandbox is not None
    generated = cascade.runtime.heroku_secret
    assert generated is not None
    assert generated.get_secret_value()
    before = await observed(cascade)
    assert (await deliver(cascade, mercury())).status_code == 401
    assert (await deliver(cascade, mercury(), secret="")).status_code == 401
    assert await observed(cascade) == before
    answer(await deliver(cascade, mercury(), secret=generated.get_secret_value()), "accepted")


# the signature checks themselves ---------------------------------------------------------

HEROKU_SECRET, HEROKU_BODY = b"foobar", b"a wild payload appeared"
HEROKU_SIGNATURE = "luDEVkRg2AxxcflGmamyN5mOPleyccUZdkg+C0MoRBY="
GITHUB_SECRET, GITHUB_BODY = b"It's a Secret to Everybody", b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_base64_hmac_accepts_heroku_test_vector() -> None:
    verify_base64_hmac(HEROKU_SECRET, HEROKU_BODY, HEROKU_SIGNATURE, SIGNATURE)
    verify_base64_hmac(HEROKU_SECRET, HEROKU_BODY, f" {HEROKU_SIGNATURE}\n", SIGNATURE)
    assert sign(HEROKU_BODY, HEROKU_SECRET.decode()) == HEROKU_SIGNATURE


@pytest.mark.parametrize(
    ("secret", "body", "given"),
    [
        pytest.param(b"foobaz", HEROKU_BODY, HEROKU_SIGNATURE, id="other-secret"),
        pytest.param(HEROKU_SECRET, HEROKU_BODY + b"!", HEROKU_SIGNATURE, id="other-body"),
        pytest.param(HEROKU_SECRET, HEROKU_BODY, HEROKU_SIGNATURE.lower(), id="case-changed"),
        pytest.param(HEROKU_SECRET, HEROKU_BODY, "sha256=" + HEROKU_SIGNATURE, id="prefixed"),
        pytest.param(HEROKU_SECRET, HEROKU_BODY, None, id="missing"),
        pytest.param(HEROKU_SECRET, HEROKU_BODY, "", id="empty"),
    ],
)
def test_base64_hmac_refuses_anything_else(secret: bytes, body: bytes, given: str | None) -> None:
    with pytest.raises(HTTPException) as refused:
        verify_base64_hmac(secret, body, given, SIGNATURE)
    assert refused.value.status_code == 401
    assert SIGNATURE in str(refused.value.detail)


def test_hex_hmac_accepts_github_test_vector() -> None:
    verify_hex_hmac(GITHUB_SECRET, GITHUB_BODY, GITHUB_SIGNATURE, "X-Hub-Signature-256")


@pytest.mark.parametrize(
    ("secret", "body", "given"),
    [
        pytest.param(b"It's a secret to everybody", GITHUB_BODY, GITHUB_SIGNATURE, id="secret"),
        pytest.param(GITHUB_SECRET, b"Hello, World?", GITHUB_SIGNATURE, id="other-body"),
        pytest.param(GITHUB_SECRET, GITHUB_BODY, GITHUB_SIGNATURE[7:], id="no-prefix"),
        pytest.param(GITHUB_SECRET, GITHUB_BODY, "sha1=" + GITHUB_SIGNATURE[7:], id="sha1"),
        pytest.param(GITHUB_SECRET, GITHUB_BODY, None, id="missing"),
    ],
)
def test_hex_hmac_refuses_anything_else(secret: bytes, body: bytes, given: str | None) -> None:
    with pytest.raises(HTTPException) as refused:
        verify_hex_hmac(secret, body, given, "X-Hub-Signature-256")
    assert refused.value.status_code == 401
    assert "X-Hub-Signature-256" in str(refused.value.detail)
