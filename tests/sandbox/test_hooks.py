"""The sandbox's app webhook subscriptions: Heroku's `/apps/{app}/webhooks`, and who gets what.

Every answer is checked against the official schema (`app-webhook`) by the harness of
`tests.sandbox.test_sandbox`; deliveries are captured by its MockTransport receiver.
"""

import json
from typing import Any

import pytest

from tests import signing
from tests.sandbox.test_sandbox import (  # noqa: F401  (fixtures)
    HOOK_URL,
    SECRET,
    Harness,
    eventually,
    heroku,
    make_sandbox,
)

OTHER = "https://other.example.com/hooks"
Json = dict[str, Any]


def signed_by(request: Any, secret: str) -> bool:
    return bool(
        request.headers["Heroku-Webhook-Hmac-SHA256"] == signing.heroku(request.content, secret)
    )


async def test_every_app_starts_with_one_subscription_to_the_webhook_url(heroku: Harness) -> None:  # noqa: F811
    (hook,) = await heroku.json("/apps/api-qa01/webhooks")
    assert (hook["url"], hook["include"], hook["level"]) == (HOOK_URL, ["api:release"], "sync")
    assert hook["app"]["name"] == "api-qa01"
    assert "secret" not in hook
    assert await heroku.json(f"/apps/api-qa01/webhooks/{hook['id']}") == hook


async def test_create_update_delete_match_the_schema(heroku: Harness) -> None:  # noqa: F811
    body = {"include": ["api:release"], "level": "notify", "url": OTHER, "secret": "x" * 16}
    created = await heroku.call("POST", "/apps/api-st01/webhooks", json=body)
    assert created.status_code == 201, created.text
    assert "Heroku-Webhook-Secret" not in created.headers  # given, so not told back
    hook = created.json()
    assert (hook["url"], hook["level"]) == (OTHER, "notify")
    path = f"/apps/api-st01/webhooks/{hook['id']}"
    patched = await heroku.call("PATCH", path, json={"level": "sync", "url": OTHER + "/2"})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["level"], patched.json()["url"]) == ("sync", OTHER + "/2")
    assert len(await heroku.json("/apps/api-st01/webhooks")) == 2
    deleted = await heroku.call("DELETE", path)
    assert deleted.status_code == 200
    assert deleted.json()["id"] == hook["id"]
    assert (await heroku.call("GET", path)).status_code == 404
    assert len(await heroku.json("/apps/api-st01/webhooks")) == 1
    assert {p.split("/links/")[0] for p in heroku.validated} >= {"#/definitions/app-webhook"}


async def test_a_subscription_without_a_secret_gets_one_told_once(heroku: Harness) -> None:  # noqa: F811
    body = {"include": ["api:release"], "level": "sync", "url": OTHER}
    created = await heroku.call("POST", "/apps/api-qa01/webhooks", json=body)
    assert created.status_code == 201
    told = created.headers["Heroku-Webhook-Secret"]
    assert len(told) >= 32
    await heroku.sandbox.deploy("api-qa01")
    await eventually(
        lambda: _some([r for r in heroku.hooks if str(r.url) == OTHER], 2), "deliveries"
    )
    assert all(signed_by(r, told) for r in heroku.hooks if str(r.url) == OTHER)
    assert all(signed_by(r, SECRET) for r in heroku.hooks if str(r.url) == HOOK_URL)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"include": ["api:release"], "level": "sync"}, id="no-url"),
        pytest.param({"include": [], "level": "sync", "url": OTHER}, id="empty-include"),
        pytest.param({"include": ["api:release"], "level": "loud", "url": OTHER}, id="bad-level"),
        pytest.param({"include": ["api:release"], "level": "sync", "url": "ftp://x"}, id="bad-url"),
        pytest.param(
            {"include": ["api:release"], "level": "sync", "url": HOOK_URL}, id="url-taken"
        ),
        pytest.param(
            {"include": ["api:release"], "level": "sync", "url": OTHER, "x": 1}, id="extra"
        ),
    ],
)
async def test_an_invalid_subscription_is_refused_with_422(heroku: Harness, body: Json) -> None:  # noqa: F811
    response = await heroku.call("POST", "/apps/api-qa01/webhooks", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["id"] == "invalid_params"
    assert len(await heroku.json("/apps/api-qa01/webhooks")) == 1


async def test_a_deleted_subscription_gets_nothing_more(heroku: Harness) -> None:  # noqa: F811
    (hook,) = await heroku.json("/apps/api-qa01/webhooks")
    await heroku.call("DELETE", f"/apps/api-qa01/webhooks/{hook['id']}")
    await heroku.sandbox.deploy("api-qa01")
    await heroku.settled("api-qa01", 2)
    await heroku.sandbox.deploy("api-st01")  # still subscribed: its events arrive
    await eventually(lambda: _some(heroku.delivered(), 2), "api-st01's webhooks")
    assert {e["data"]["app"]["name"] for e in heroku.delivered()} == {"api-st01"}


async def test_a_notify_subscription_is_tried_once(heroku: Harness) -> None:  # noqa: F811
    (hook,) = await heroku.json("/apps/api-qa01/webhooks")
    await heroku.call("PATCH", f"/apps/api-qa01/webhooks/{hook['id']}", json={"level": "notify"})
    heroku.hook_replies.extend([500, 500])
    await heroku.sandbox.deploy("api-qa01")

    async def given_up() -> list[Json] | None:
        deliveries = (await heroku.control("GET", "/_sandbox/webhooks")).json()["deliveries"]
        done = [d for d in deliveries if d["status"] != "pending"]
        return deliveries if len(done) == 2 else None

    deliveries = await eventually(given_up, "both deliveries to end")
    assert [(d["status"], d["attempts"]) for d in deliveries] == [("failed", 1), ("failed", 1)]
    assert {d["webhook_id"] for d in deliveries} == {hook["id"]}


async def _some(items: list[Any], count: int) -> list[Any] | None:
    return items if len(items) >= count else None


async def test_deliveries_record_the_subscription(heroku: Harness) -> None:  # noqa: F811
    await heroku.sandbox.deploy("api-qa01")
    await eventually(lambda: _some(heroku.delivered(), 2), "webhooks")
    deliveries = (await heroku.control("GET", "/_sandbox/webhooks")).json()["deliveries"]
    (hook,) = await heroku.json("/apps/api-qa01/webhooks")
    assert {(d["webhook_id"], d["url"]) for d in deliveries} == {(hook["id"], HOOK_URL)}
    events = [json.loads(r.content) for r in heroku.hooks]
    assert {e["webhook_metadata"]["webhook"]["id"] for e in events} == {hook["id"]}
