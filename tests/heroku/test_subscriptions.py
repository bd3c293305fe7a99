"""Webhook subscriptions kept by Cascade (`app.heroku.subscriptions`) against the in-process
sandbox.

The sandbox starts every app subscribed to its own internal URL: a subscription that is not
ours, which must never change. Cascade, given a public URL, adds and keeps its own. The
operator's hand is a second Platform API client on the same sandbox.
"""

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config.services import Service, ServicesConfig
from app.heroku.endpoint import endpoint, same_endpoint
from app.heroku.manual import manual_commands
from app.heroku.subscriptions import PLACEHOLDER, Subscriptions
from app.heroku.suspects import Suspects
from app.sandbox.resources import ReleaseStatus
from app.storage import keys
from app.storage.locks import Locks
from tests.inprocess import (
    API_STAGES,
    WEB_STAGES,
    WEBHOOK_SECRET,
    Cascade,
    Start,
    eventually,
)

PUBLIC = "https://cascade.example.com"
OURS = PUBLIC + "/webhooks/heroku"
APPS = (*API_STAGES, *WEB_STAGES)
MEDIA_TYPE = "application/vnd.heroku+json; version=3"
Json = dict[str, Any]


def hooks(cascade: Cascade, app: str) -> list[Any]:
    """The sandbox's subscriptions of `app`, secrets included (the API never shows them)."""
    assert cascade.runtime.sandbox is not None
    return list(cascade.runtime.sandbox.world.app(app).webhooks)


def ours(cascade: Cascade, app: str) -> list[Any]:
    return [h for h in hooks(cascade, app) if same_endpoint(h.url, OURS)]


async def subscribed(cascade: Cascade) -> bool:
    return all(len(ours(cascade, app)) == 1 for app in APPS)


@pytest.fixture
async def subscribing(start_cascade: Start) -> Cascade:
    cascade = await start_cascade(public_url=PUBLIC)
    await eventually(lambda: subscribed(cascade), "a subscription on every stage app")
    return cascade


@pytest.fixture
async def operator(subscribing: Cascade) -> AsyncIterator[httpx.AsyncClient]:
    """Someone else with a Heroku token, on the same (simulated) platform."""
    assert subscribing.runtime.sandbox is not None
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=subscribing.runtime.sandbox.app),
        base_url="https://api.heroku.com",
        headers={"Authorization": "Bearer someone-else", "Accept": MEDIA_TYPE},
    ) as client:
        yield client


async def check(cascade: Cascade) -> dict[str, Any]:
    """Run the check now, as at start-up or after a reload; the change for each app."""
    assert cascade.runtime.subscriptions is not None
    changes = await cascade.runtime.subscriptions.ensure(cascade.runtime.catalog.config)
    return {change.app: change for change in changes}


# created ---------------------------------------------------------------------------------


async def test_every_stage_app_gets_exactly_one_subscription_of_ours(subscribing: Cascade) -> None:
    for app in APPS:
        (hook,) = ours(subscribing, app)
        assert hook.url == OURS
        assert hook.include == ["api:release"]
        assert hook.level == "sync"
        assert hook.secret == WEBHOOK_SECRET  # what Cascade verifies deliveries with
    changes = await check(subscribing)  # a second look changes nothing
    assert {app: c.action for app, c in changes.items()} == dict.fromkeys(APPS, "kept")
    assert all(len(ours(subscribing, app)) == 1 for app in APPS)


async def test_the_sandboxs_own_subscriptions_are_left_alone(subscribing: Cascade) -> None:
    for app in APPS:
        others = [h for h in hooks(subscribing, app) if not same_endpoint(h.url, OURS)]
        (other,) = others
        assert other.url == "http://cascade.internal/webhooks/heroku"
        assert other.created_at == other.updated_at  # never patched


async def test_without_a_public_url_nothing_is_subscribed(cascade: Cascade) -> None:
    assert cascade.runtime.subscriptions is None
    assert cascade.runtime.reconciler.unannounced is None
    for app in APPS:
        assert [h.url for h in hooks(cascade, app)] == ["http://cascade.internal/webhooks/heroku"]


# repaired --------------------------------------------------------------------------------


async def test_a_deleted_subscription_is_created_again(
    subscribing: Cascade, operator: httpx.AsyncClient
) -> None:
    (gone,) = ours(subscribing, "api-st")
    response = await operator.delete(f"/apps/api-st/webhooks/{gone.id}")
    assert response.status_code == 200
    assert ours(subscribing, "api-st") == []
    changes = await check(subscribing)
    assert changes["api-st"].action == "created"
    (again,) = ours(subscribing, "api-st")
    assert (again.url, again.level, again.secret) == (OURS, "sync", WEBHOOK_SECRET)
    assert {c.action for app, c in changes.items() if app != "api-st"} == {"kept"}


async def test_a_subscription_pointed_elsewhere_is_pointed_back(
    subscribing: Cascade, operator: httpx.AsyncClient
) -> None:
    (hook,) = ours(subscribing, "web-prod")
    body = {"url": "https://elsewhere.example.net/hook", "level": "notify", "secret": "stolen"}
    response = await operator.patch(f"/apps/web-prod/webhooks/{hook.id}", json=body)
    assert response.status_code == 200, response.text
    assert ours(subscribing, "web-prod") == []
    changes = await check(subscribing)
    change = changes["web-prod"]
    assert (change.action, change.webhook_id) == ("repaired", hook.id)  # the same one, by id
    assert "url was https://elsewhere.example.net/hook" in change.detail
    assert "level was notify" in change.detail
    (repaired,) = ours(subscribing, "web-prod")
    assert (repaired.id, repaired.url, repaired.level) == (hook.id, OURS, "sync")
    assert repaired.secret == WEBHOOK_SECRET


async def test_a_request_checks_again_in_the_background(
    subscribing: Cascade, operator: httpx.AsyncClient
) -> None:
    (gone,) = ours(subscribing, "api-qa")
    await operator.delete(f"/apps/api-qa/webhooks/{gone.id}")
    assert subscribing.runtime.subscriptions is not None
    subscribing.runtime.subscriptions.request()  # what a services-file reload does
    await eventually(lambda: subscribed(subscribing), "the subscription to be back")


# checked on evidence ----------------------------------------------------------------------


async def test_an_unannounced_release_checks_that_apps_subscription_only(
    subscribing: Cascade, operator: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    runtime, sandbox = subscribing.runtime, subscribing.runtime.sandbox
    assert sandbox is not None
    checked = spy(subscribing)
    for hook in hooks(subscribing, "api-st"):  # ours and the sandbox's: no delivery any more
        await operator.delete(f"/apps/api-st/webhooks/{hook.id}")
    before = dict(runtime.heroku.calls)
    await sandbox.deploy("api-st")
    await eventually(lambda: released(subscribing, "api-st"), "the release to finish")
    with caplog.at_level(logging.INFO, logger="app.heroku.subscriptions"):
        await resync(subscribing, "api")  # finds the release no webhook brought
        await eventually(lambda: recreated(subscribing, "api-st"), "our subscription back")
        # the check logs once the subscription is back: a moment after what `recreated` sees
        line = "webhook subscription of app=api-st checked"
        await eventually(lambda: as_async(line in caplog.text), "the check's log line")
    assert checked == ["api-st"]
    made = {k: v - before.get(k, 0) for k, v in runtime.heroku.calls.items()}
    assert made["GET /apps/{app}/webhooks"] == 1
    assert made["POST /apps/{app}/webhooks"] == 1
    assert "webhook subscription of app=api-st checked" in caplog.text
    assert "created" in caplog.text


async def test_an_idle_resync_checks_nothing(subscribing: Cascade) -> None:
    checked = spy(subscribing)
    await resync(subscribing, "api", "web")  # every release already came by webhook
    assert subscribing.runtime.subscriptions is not None
    subscribing.runtime.subscriptions.suspects.suspect("web-dev")  # a marker: checks in order
    await eventually(lambda: as_async(checked), "the marker's check")
    assert checked == ["web-dev"]


async def test_an_app_is_checked_at_most_once_per_resync_interval(subscribing: Cascade) -> None:
    subscriptions, checked = subscribing.runtime.subscriptions, spy(subscribing)
    assert subscriptions is not None
    subscriptions.suspects.suspect("api-qa")
    await eventually(lambda: as_async(checked), "the first check")
    subscriptions.suspects.suspect("api-qa")  # again within the interval: not queued
    subscriptions.suspects.suspect("web-dev")
    await eventually(lambda: as_async("web-dev" in checked), "the second app's check")
    assert checked == ["api-qa", "web-dev"]


async def test_a_check_that_failed_is_tried_again_an_interval_later(subscribing: Cascade) -> None:
    runtime, failures = subscribing.runtime, [RuntimeError("a bug, once")]
    checked: list[str] = []

    async def stages(service: Service) -> tuple[str, ...] | None:
        if failures:
            raise failures.pop()
        checked.extend(service.stages or ())
        return service.stages

    again = Subscriptions(
        runtime.heroku,
        runtime.redis,
        Locks(runtime.redis),
        stages,
        runtime.catalog,
        PUBLIC,
        "s",
        Suspects(0.05),
    )
    again.start()
    try:
        await eventually(lambda: as_async(set(checked) == set(APPS)), "the check tried again")
    finally:
        await again.stop()


async def test_duplicates_at_our_url_are_removed_and_one_is_kept(
    subscribing: Cascade, operator: httpx.AsyncClient
) -> None:
    (kept,) = ours(subscribing, "api-prod")
    body = {"include": ["api:release"], "level": "sync", "url": OURS + "/", "secret": "x" * 12}
    response = await operator.post("/apps/api-prod/webhooks", json=body)
    assert response.status_code == 201, response.text
    assert len(ours(subscribing, "api-prod")) == 2
    change = (await check(subscribing))["api-prod"]
    assert change.removed == (response.json()["id"],)
    assert [h.id for h in ours(subscribing, "api-prod")] == [kept.id]


async def test_a_new_secret_is_set_on_the_subscriptions(subscribing: Cascade) -> None:
    runtime = subscribing.runtime
    rotated = Subscriptions(
        runtime.heroku,
        runtime.redis,
        Locks(runtime.redis),
        _stages,
        runtime.catalog,
        PUBLIC,
        "rotated-secret-1",
        Suspects(3600),
    )
    change = await rotated.ensure_app("api-qa")
    assert (change.action, change.detail) == ("repaired", "secret set")
    assert ours(subscribing, "api-qa")[0].secret == "rotated-secret-1"
    assert (await rotated.ensure_app("api-qa")).action == "kept"  # recorded: not set again


# someone else's --------------------------------------------------------------------------


async def test_someone_elses_subscriptions_are_never_touched(
    subscribing: Cascade, operator: httpx.AsyncClient
) -> None:
    mine = {"include": ["api:build"], "level": "notify", "url": "https://ci.example.org/heroku"}
    theirs = [
        await operator.post("/apps/api-qa/webhooks", json=mine | {"secret": "their-secret"}),
        # Same host, another path: not our endpoint either.
        await operator.post("/apps/api-st/webhooks", json=mine | {"url": PUBLIC + "/other"}),
    ]
    assert [r.status_code for r in theirs] == [201, 201]
    assert "Heroku-Webhook-Secret" in theirs[1].headers  # made by Heroku: none was given
    before = {
        (h.id, h.url, tuple(h.include), h.level, h.secret, h.updated_at) for h in _all(subscribing)
    }
    changes = await check(subscribing)
    assert {c.action for c in changes.values()} == {"kept"}
    after = {
        (h.id, h.url, tuple(h.include), h.level, h.secret, h.updated_at) for h in _all(subscribing)
    }
    assert after == before


async def test_a_failing_app_does_not_stop_the_others(
    subscribing: Cascade, operator: httpx.AsyncClient
) -> None:
    fault = {"method": "GET", "path_prefix": "/apps/api-st/webhooks", "status": 403, "count": 10}
    response = await operator.post("/_sandbox/faults", json={"errors": [fault]})
    assert response.status_code == 200
    for app in ("api-qa", "web-dev"):
        (hook,) = ours(subscribing, app)
        await operator.delete(f"/apps/{app}/webhooks/{hook.id}")
    changes = await check(subscribing)
    assert "api-st" not in changes
    assert changes["api-qa"].action == changes["web-dev"].action == "created"


# pure helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(OURS, True, id="same"),
        pytest.param(OURS + "/", True, id="trailing-slash"),
        pytest.param("https://CASCADE.example.com/webhooks/heroku", True, id="host-case"),
        pytest.param("https://cascade.example.com:443/webhooks/heroku", False, id="explicit-port"),
        pytest.param("http://cascade.example.com/webhooks/heroku", False, id="other-scheme"),
        pytest.param("https://cascade.example.com/webhooks/github", False, id="other-path"),
        pytest.param("https://evil.example.com/webhooks/heroku", False, id="other-host"),
        pytest.param("https://[bad/webhooks/heroku", False, id="unparseable"),
    ],
)
def test_which_urls_are_our_endpoint(url: str, expected: bool) -> None:
    assert same_endpoint(url, OURS) is expected


def test_endpoint_of_a_public_url() -> None:
    assert endpoint("https://c.example.com/") == "https://c.example.com/webhooks/heroku"
    assert endpoint("https://c.example.com/base") == "https://c.example.com/base/webhooks/heroku"


def test_manual_commands_name_every_stage_app_and_never_the_secret() -> None:
    config = ServicesConfig(
        path=Path("cascade.toml"),
        services=(
            Service("api", "api", stages=("api-qa", "api-prod")),
            Service("web", "web-pipeline"),  # stages from the pipeline's couplings
        ),
    )
    add = "heroku webhooks:add -i api:release -l sync -u https://c.example.com/webhooks/heroku"
    secret = '-s "$HEROKU_WEBHOOK_SECRET"'
    assert manual_commands(config, "https://c.example.com") == [
        f"{add} {secret} -a api-qa",
        f"{add} {secret} -a api-prod",
        "# web: its stages are the apps of pipeline web-pipeline"
        " (heroku pipelines:info web-pipeline); one line per app:",
        f"{add} {secret} -a APP",
    ]
    known = manual_commands(config, apps={"web": ["web-dev", "web-prod"]})
    assert [line.split()[-1] for line in known] == ["api-qa", "api-prod", "web-dev", "web-prod"]
    assert all(f"-u {PLACEHOLDER}/webhooks/heroku" in line for line in known)


async def _stages(service: Service) -> tuple[str, ...] | None:
    return service.stages


def _all(cascade: Cascade) -> list[Any]:
    return [hook for app in APPS for hook in hooks(cascade, app)]


def spy(cascade: Cascade) -> list[str]:
    """The apps Cascade's own subscriptions loop checks from now on, in order."""
    subscriptions = cascade.runtime.subscriptions
    assert subscriptions is not None
    checked: list[str] = []
    ensure_app = subscriptions.ensure_app

    async def recording(app: str) -> Any:
        checked.append(app)
        return await ensure_app(app)

    subscriptions.ensure_app = recording  # type: ignore[method-assign]
    return checked


async def resync(cascade: Cascade, *services: str) -> None:
    """The periodic resync of `services`: their marks expire, the tick reconciles them."""
    runtime = cascade.runtime
    await runtime.redis.delete(*(keys.resynced(name) for name in services))
    runtime.scheduler.tick()
    await cascade.settle()


async def released(cascade: Cascade, app: str) -> bool:
    assert cascade.runtime.sandbox is not None
    latest = cascade.runtime.sandbox.world.app(app).releases[-1]
    return bool(latest.status is ReleaseStatus.SUCCEEDED)


async def recreated(cascade: Cascade, app: str) -> bool:
    return len(ours(cascade, app)) == 1


async def as_async(value: object) -> bool:
    return bool(value)
