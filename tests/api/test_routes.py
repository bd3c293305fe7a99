"""The HTTP API of SPEC.md, against Cascade run in-process on the sandbox platform.

Each test starts the whole app (lifespan: Redis, reconciler, queue, scheduler, the
in-process sandbox) on the session's real Redis, flushed first, and speaks to it over
ASGI. Asynchronous effects are awaited by polling with a bound, never by sleeping.
"""

import gc
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import AsyncMock

import pytest
import redis.asyncio as redis
import respx
from asgi_lifespan import LifespanManager

from app.core.models import Pause, PromotionRecord, PromotionState
from app.main import YOUNG_COLLECTION_EVERY, create_app
from app.storage import keys
from tests.factories import refuse_the_platform_token
from tests.inprocess import (
    ADMIN,
    ADMIN_TOKEN,
    API_STAGES,
    WEB_STAGES,
    Cascade,
    Json,
    Start,
    clean_environment,
    eventually,
    in_future,
    make_settings,
    observed,
)

SPEC_PATHS = (
    "/status",
    "/status/{service}",
    "/pause",
    "/retry",
    "/events",
    "/healthz",
    "/readyz",
    "/webhooks/heroku",
)

# /status ---------------------------------------------------------------------------------


async def test_status_shape(cascade: Cascade) -> None:
    status = await cascade.status()
    assert status["sandbox"] is True
    assert status["dry_run"] is False
    assert status["paused"] is None
    assert status["config_problem"] is None  # the services file was not refused
    assert [s["name"] for s in status["services"]] == ["api", "web"]
    api, web = status["services"]
    assert api["pipeline"] == "api"
    assert api["paused"] is None
    assert [s["app"] for s in api["stages"]] == list(API_STAGES)
    assert [s["app"] for s in web["stages"]] == list(WEB_STAGES)
    for stage in api["stages"] + web["stages"]:
        assert len(stage["commit"]) == 40
        release = stage["release"]
        assert isinstance(release["version"], int)
        assert release["status"] == "succeeded"
        assert datetime.fromisoformat(release["created_at"]).tzinfo is not None
    # The sandbox starts every stage on one commit: nothing to promote.
    assert api["promotions"] == []
    assert web["promotions"] == []


async def test_status_reports_dry_run(start_cascade: Start) -> None:
    cascade = await start_cascade(dry_run=True)
    assert (await cascade.status())["dry_run"] is True


async def test_status_of_one_service(cascade: Cascade) -> None:
    one = await cascade.json("/status/web")
    everything = await cascade.status()
    assert one == everything["services"][1]
    assert one["name"] == "web"


async def test_status_of_unknown_service_is_404(cascade: Cascade) -> None:
    response = await cascade.client.get("/status/nope")
    assert response.status_code == 404
    assert "nope" in response.json()["detail"]


# POST /pause, DELETE /pause ------------------------------------------------------------


async def test_global_pause(cascade: Cascade) -> None:
    until = in_future(hours=1)
    response = await cascade.client.post(
        "/pause", json={"reason": "incident 42", "until": until, "by": "ana"}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    pause = response.json()
    assert set(pause) == {"service", "reason", "by", "until", "created_at"}
    assert pause["service"] is None
    assert pause["reason"] == "incident 42"
    assert pause["by"] == "ana"
    assert datetime.fromisoformat(pause["until"]) == datetime.fromisoformat(until)
    created = datetime.fromisoformat(pause["created_at"])
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=1)
    status = await cascade.status()
    assert status["paused"] == pause
    assert all(s["paused"] is None for s in status["services"])


async def test_a_pause_redis_did_not_confirm_is_in_force_and_asked_again(
    cascade: Cascade, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pause only the primary has is lost in a failover to a replica that lagged, and only
    the process that wrote it could tell (simulation, seed 105): the operator is told."""
    counted = (keys.epoch(None), "claims")  # one server: one place (`app.storage.epoch`)
    before = int(await cascade.runtime.store.redis.hget(*counted) or 0)
    unconfirmed = AsyncMock(return_value=False)
    monkeypatch.setattr(cascade.runtime.epoch, "durable", unconfirmed)
    response = await cascade.client.post(
        "/pause", json={"reason": "incident 43", "service": "api"}, headers=ADMIN
    )
    assert response.status_code == 503, response.text
    assert "send it again" in response.json()["detail"]
    unconfirmed.assert_awaited_once_with("api")
    status = await cascade.status()
    assert status["services"][0]["paused"]["reason"] == "incident 43"  # in force all the same

    monkeypatch.undo()
    response = await cascade.client.post(
        "/pause", json={"reason": "incident 43", "service": "api"}, headers=ADMIN
    )
    assert response.status_code == 201
    assert int(await cascade.runtime.store.redis.hget(*counted) or 0) == before + 1  # counted


async def test_an_ended_pause_kept_by_redis_is_not_shown(cascade: Cascade) -> None:
    """Redis keeps a timed pause a day past `until` (housekeeping): Cascade's clock says
    it ended, so neither `/status` nor the service shows it."""
    ended = datetime.now(UTC) - timedelta(minutes=1)
    for service in (None, "api"):
        made = Pause("over", created_at=ended - timedelta(hours=1), until=ended, service=service)
        await cascade.runtime.store.set_pause(made)
        assert await cascade.runtime.store.pause(service) is not None
    status = await cascade.status()
    assert status["paused"] is None
    assert all(s["paused"] is None for s in status["services"])


async def test_service_pause(cascade: Cascade) -> None:
    response = await cascade.client.post(
        "/pause", json={"reason": "flaky", "service": "api"}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    pause = response.json()
    assert pause["service"] == "api"
    assert pause["until"] is None
    assert pause["by"] is None
    status = await cascade.status()
    assert status["paused"] is None
    api, web = status["services"]
    assert api["paused"] == pause
    assert web["paused"] is None
    assert (await cascade.json("/status/api"))["paused"] == pause


async def test_a_new_pause_replaces_the_old(cascade: Cascade) -> None:
    for service in (None, "api"):
        first = await cascade.client.post(
            "/pause", json={"reason": "first", "service": service}, headers=ADMIN
        )
        second = await cascade.client.post(
            "/pause",
            json={"reason": "second", "service": service, "until": in_future(hours=2)},
            headers=ADMIN,
        )
        assert (first.status_code, second.status_code) == (201, 201)
    status = await cascade.status()
    assert status["paused"]["reason"] == "second"
    assert status["paused"]["until"] is not None
    assert status["services"][0]["paused"]["reason"] == "second"


@pytest.mark.parametrize(
    ("body", "status_code"),
    [
        pytest.param({"reason": "x", "service": "nope"}, 404, id="unknown-service"),
        pytest.param({"reason": "x", "until": "2020-01-01T00:00:00Z"}, 422, id="until-past"),
        pytest.param({"reason": "x", "until": "2999-01-01T00:00:00"}, 422, id="until-naive"),
        pytest.param({"until": None}, 422, id="no-reason"),
        pytest.param({"reason": ""}, 422, id="empty-reason"),
        pytest.param({"reason": "x", "why": "extra"}, 422, id="extra-field"),
        pytest.param({"reason": "x", "until": "tomorrow"}, 422, id="until-not-a-time"),
    ],
)
async def test_refused_pause(cascade: Cascade, body: Json, status_code: int) -> None:
    before = await observed(cascade)
    response = await cascade.client.post("/pause", json=body, headers=ADMIN)
    assert response.status_code == status_code, response.text
    assert "detail" in response.json()
    assert await observed(cascade) == before


@pytest.mark.parametrize(
    ("until", "length"),
    [
        pytest.param("30m", timedelta(minutes=30), id="minutes"),
        pytest.param("2h", timedelta(hours=2), id="hours"),
        pytest.param("1d", timedelta(days=1), id="days"),
        pytest.param("1h30m", timedelta(minutes=90), id="hours-and-minutes"),
    ],
)
async def test_until_may_be_a_duration_from_the_servers_clock(
    cascade: Cascade, until: str, length: timedelta
) -> None:
    response = await cascade.client.post(
        "/pause", json={"reason": "x", "until": until, "service": "api"}, headers=ADMIN
    )
    assert response.status_code == 201, response.text
    pause = response.json()
    counted = datetime.fromisoformat(pause["until"]) - datetime.fromisoformat(pause["created_at"])
    assert counted == length
    assert (await cascade.json("/status/api"))["paused"] == pause


@pytest.mark.parametrize(
    "until", ["tomorrow", "2 hours", "-1h", "2026-13-01T00:00:00Z", "", "99999999d"]
)
async def test_a_bad_until_names_the_accepted_forms(cascade: Cascade, until: str) -> None:
    before = await observed(cascade)
    response = await cascade.client.post(
        "/pause", json={"reason": "x", "until": until}, headers=ADMIN
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert "RFC 3339" in detail
    assert "2h" in detail
    assert await observed(cascade) == before


async def test_an_unknown_key_is_named_with_the_accepted_ones(cascade: Cascade) -> None:
    before = await observed(cascade)
    for path, body, expected in [
        (
            "/pause",
            {"reasn": "x"},
            'The body has an unknown key "reasn"; the accepted keys are reason, until,'
            " service, by.",
        ),
        (
            "/retry",
            {"service": "api", "to": "api-st", "x": 1, "y": 2},
            'The body has unknown keys "x", "y"; the accepted keys are service, to, commit.',
        ),
    ]:
        response = await cascade.client.post(path, json=body, headers=ADMIN)
        assert response.status_code == 422, response.text
        assert response.json() == {"detail": expected}
    assert await observed(cascade) == before


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "expected"),
    [
        pytest.param("POST", "/pause", {"json": {}}, 'Field "reason" is required.', id="missing"),
        pytest.param(
            "POST",
            "/pause",
            {"json": {"reason": "", "by": "b" * 201}},
            'Field "reason" should have at least 1 character.'
            ' Field "by" should have at most 200 characters.',
            id="two-problems",
        ),
        pytest.param(
            "POST",
            "/pause",
            {"json": {"reason": "x", "until": 7200}},
            'Field "until" should be a valid string.',
            id="wrong-type",
        ),
        pytest.param(
            "POST",
            "/pause",
            {"content": b"{nope", "headers": {"content-type": "application/json"}},
            "The body is not JSON: expecting property name enclosed in double quotes"
            " (at character 1).",
            id="not-json",
        ),
        pytest.param(
            "POST", "/retry", {"json": [1]}, "The body should be a JSON object.", id="not-object"
        ),
        pytest.param(
            "GET",
            "/events",
            {"params": {"limit": 0}},
            'Query parameter "limit" should be greater than or equal to 1.',
            id="query-range",
        ),
    ],
)
async def test_a_bad_request_reads_as_one_sentence_per_problem(
    cascade: Cascade, method: str, path: str, kwargs: Json, expected: str
) -> None:
    headers = {**ADMIN, **kwargs.pop("headers", {})}
    response = await cascade.client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == 422, response.text
    assert response.json() == {"detail": expected}


async def test_until_in_the_past_is_named(cascade: Cascade) -> None:
    response = await cascade.client.post(
        "/pause", json={"reason": "x", "until": in_future(seconds=-5)}, headers=ADMIN
    )
    assert response.status_code == 422
    assert "past" in response.json()["detail"]


async def test_lift_pause_when_nothing_is_paused(cascade: Cascade) -> None:
    before = await observed(cascade)
    for params in ({}, {"service": "api"}):
        response = await cascade.client.delete("/pause", params=params, headers=ADMIN)
        assert response.status_code == 204
        assert response.content == b""
    assert await observed(cascade) == before  # nothing lifted: no event


async def test_lift_global_and_service_pauses(cascade: Cascade) -> None:
    for service in (None, "api", "web"):
        made = await cascade.client.post(
            "/pause", json={"reason": "r", "service": service}, headers=ADMIN
        )
        assert made.status_code == 201
    lifted = await cascade.client.delete("/pause", params={"service": "api"}, headers=ADMIN)
    assert lifted.status_code == 204
    status = await cascade.status()
    assert status["paused"] is not None  # the global pause stays
    assert [s["paused"] is None for s in status["services"]] == [True, False]

    lifted = await cascade.client.delete("/pause", headers=ADMIN)
    assert lifted.status_code == 204
    status = await cascade.status()
    assert status["paused"] is None
    assert [s["paused"] is None for s in status["services"]] == [True, False]  # web's stays


async def test_lift_pause_of_unknown_service_is_404(cascade: Cascade) -> None:
    response = await cascade.client.delete("/pause", params={"service": "nope"}, headers=ADMIN)
    assert response.status_code == 404


# authorization of writes ---------------------------------------------------------------

WRITES = [
    pytest.param("POST", "/pause", {"json": {"reason": "x"}}, id="post-pause"),
    pytest.param("DELETE", "/pause", {}, id="delete-pause"),
    pytest.param("DELETE", "/pause", {"params": {"service": "api"}}, id="delete-service-pause"),
    pytest.param("POST", "/retry", {"json": {"service": "api", "to": "api-st"}}, id="retry"),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), WRITES)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-authorization"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong-token"),
        pytest.param({"Authorization": "Bearer "}, id="empty-token"),
        pytest.param({"Authorization": ADMIN_TOKEN}, id="no-scheme"),
        pytest.param({"Authorization": f"Basic {ADMIN_TOKEN}"}, id="basic-scheme"),
    ],
)
async def test_writes_without_the_admin_token_are_401(
    cascade: Cascade, method: str, path: str, kwargs: Json, headers: dict[str, str]
) -> None:
    await _pause_everything(cascade)  # so that a DELETE would have something to lift
    before = await observed(cascade)
    response = await cascade.client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == 401, response.text
    assert "CASCADE_ADMIN_TOKEN" in response.json()["detail"]
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await observed(cascade) == before


NOT_THE_SANDBOX = {"heroku_api_key": "a-platform-token", "heroku_api_url": "http://127.0.0.1:9"}


@pytest.mark.parametrize(("method", "path", "kwargs"), WRITES)
@pytest.mark.parametrize("admin_token", [None, ""], ids=["unset", "empty"])
async def test_writes_with_no_admin_token_configured_are_403(
    start_cascade: Start,
    respx_mock: respx.MockRouter,
    method: str,
    path: str,
    kwargs: Json,
    admin_token: str | None,
) -> None:
    """Unset: outside the sandbox (a Platform API token set; nothing answers there), as the
    sandbox keeps a token of its own when none is set (tests/e2e/test_cli.py)."""
    platform = NOT_THE_SANDBOX if admin_token is None else {}
    refuse_the_platform_token(respx_mock)
    cascade = await start_cascade(admin_token=admin_token, **platform)
    await _pause_everything(cascade)
    before = await observed(cascade)
    for headers in ({}, ADMIN):
        response = await cascade.client.request(method, path, headers=headers, **kwargs)
        assert response.status_code == 403, response.text
        assert "CASCADE_ADMIN_TOKEN" in response.json()["detail"]
    assert await observed(cascade) == before


async def _pause_everything(cascade: Cascade) -> None:
    """Pauses set behind the API's back, so that refused writes have something to change."""
    now = datetime.now(UTC)
    for service in (None, "api"):
        await cascade.runtime.store.set_pause(Pause("set by the test", now, service=service))


# /events ---------------------------------------------------------------------------------


async def test_events_newest_first_with_pauses(cascade: Cascade) -> None:
    assert await cascade.events() == []
    await cascade.client.post("/pause", json={"reason": "one"}, headers=ADMIN)
    await cascade.client.post("/pause", json={"reason": "two", "service": "api"}, headers=ADMIN)
    await cascade.client.delete("/pause", params={"service": "api"}, headers=ADMIN)
    await cascade.client.delete("/pause", headers=ADMIN)
    await cascade.settle()
    events = await cascade.events()
    assert [e["kind"] for e in events] == ["pause.lifted", "pause.lifted", "pause.set", "pause.set"]
    assert [e["service"] for e in events] == [None, "api", "api", None]
    for event in events:
        assert {"at", "kind", "service", "commit", "from", "to", "message"} <= set(event)
    times = [datetime.fromisoformat(e["at"]) for e in events]
    assert times == sorted(times, reverse=True)
    assert "one" in events[3]["message"]
    assert "two" in events[2]["message"]


async def test_events_of_one_service(cascade: Cascade) -> None:
    await cascade.client.post("/pause", json={"reason": "all"}, headers=ADMIN)
    await cascade.client.post("/pause", json={"reason": "api", "service": "api"}, headers=ADMIN)
    await cascade.client.post("/pause", json={"reason": "web", "service": "web"}, headers=ADMIN)
    await cascade.settle()
    api = await cascade.events(service="api")
    assert [(e["kind"], e["service"]) for e in api] == [("pause.set", "api")]
    web = await cascade.events(service="web")
    assert [(e["kind"], e["service"]) for e in web] == [("pause.set", "web")]
    assert len(await cascade.events()) == 3


async def test_events_limit(cascade: Cascade) -> None:
    for n in range(3):
        await cascade.client.post("/pause", json={"reason": f"r{n}"}, headers=ADMIN)
    await cascade.settle()
    latest = await cascade.events(limit=1)
    assert len(latest) == 1
    assert "r2" in latest[0]["message"]
    assert len(await cascade.events(limit=1000)) == 3
    for limit in (0, -1, 1001, "x"):
        response = await cascade.client.get("/events", params={"limit": limit})
        assert response.status_code == 422, limit


async def test_events_of_unknown_service_is_404(cascade: Cascade) -> None:
    response = await cascade.client.get("/events", params={"service": "nope"})
    assert response.status_code == 404


# POST /retry -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"service": "nope", "to": "api-st"}, id="unknown-service"),
        pytest.param({"service": "api", "to": "api-qa"}, id="first-stage"),
        pytest.param({"service": "api", "to": "web-prod"}, id="other-service-app"),
        pytest.param({"service": "api", "to": "nope"}, id="unknown-app"),
    ],
)
async def test_retry_of_what_is_no_target_is_404(cascade: Cascade, body: Json) -> None:
    before = await observed(cascade)
    response = await cascade.client.post("/retry", json=body, headers=ADMIN)
    assert response.status_code == 404, response.text
    assert await observed(cascade) == before


async def test_retry_of_no_target_names_the_target_stages(cascade: Cascade) -> None:
    response = await cascade.client.post(
        "/retry", json={"service": "api", "to": "api-qa"}, headers=ADMIN
    )
    assert response.status_code == 404, response.text
    detail = response.json()["detail"]
    assert "'api-qa' is not a target stage of api" in detail
    assert "api-st, api-prod" in detail


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"service": "api"}, id="no-to"),
        pytest.param({"to": "api-st"}, id="no-service"),
        pytest.param({"service": "api", "to": "api-st", "x": 1}, id="extra-field"),
    ],
)
async def test_retry_with_a_bad_body_is_422(cascade: Cascade, body: Json) -> None:
    response = await cascade.client.post("/retry", json=body, headers=ADMIN)
    assert response.status_code == 422


async def test_retry_with_nothing_failed_is_accepted(cascade: Cascade) -> None:
    response = await cascade.client.post(
        "/retry", json={"service": "api", "to": "api-prod"}, headers=ADMIN
    )
    assert response.status_code == 202
    assert response.json()["detail"] == "nothing had failed; re-evaluating"
    await cascade.settle()
    assert await cascade.events() == []


async def test_retry_clears_a_failed_promotion(cascade: Cascade) -> None:
    commit = "c" * 40
    assert cascade.runtime.sandbox is not None
    release = await cascade.runtime.sandbox.deploy("api-qa", commit)
    await eventually(
        lambda: _has_commit(cascade, "api", "api-qa", commit), "the deploy to reach api-qa"
    )
    now = datetime.now(UTC)
    claimed = PromotionRecord(
        service="api",
        source="api-qa",
        target="api-st",
        commit=commit,
        release_id=release["id"],
        state=PromotionState.CLAIMED,
        claimed_at=now,
        updated_at=now,
        token="test",
    )
    assert await cascade.runtime.ledger.claim(claimed) is True
    failed_record = replace(
        claimed, state=PromotionState.FAILED, promotion_id="made-up", error="the test says so"
    )
    assert await cascade.runtime.ledger.swap(claimed, failed_record) is True
    failed = (await cascade.json("/status/api"))["promotions"]
    assert [(p["to"], p["commit"], p["state"]) for p in failed] == [("api-st", commit, "failed")]

    response = await cascade.client.post(
        "/retry", json={"service": "api", "to": "api-st"}, headers=ADMIN
    )
    assert response.status_code == 202, response.text
    assert response.json()["detail"] == "cleared a failed promotion"
    assert await cascade.runtime.ledger.find("api", [("api-st", commit)]) == {}
    await cascade.settle()
    after = (await cascade.json("/status/api"))["promotions"]
    assert [(p["to"], p["commit"], p["state"]) for p in after] == [("api-st", commit, "waiting")]
    retried = [e for e in await cascade.events(service="api") if e["kind"] == "promotion.retry"]
    assert len(retried) == 1
    assert commit[:7] in retried[0]["message"]


async def test_retry_clears_the_suspect_mark_of_a_halted_commit(cascade: Cascade) -> None:
    commit = "d" * 40
    assert cascade.runtime.sandbox is not None
    await cascade.runtime.sandbox.deploy("api-qa", commit)
    await eventually(
        lambda: _has_commit(cascade, "api", "api-qa", commit), "the deploy to reach api-qa"
    )
    halt = Pause(
        reason="auto-halt: alert X", created_at=datetime.now(UTC), by="cascade", service="api"
    )
    assert await cascade.runtime.store.halt("api-qa", commit, halt)
    lifted = await cascade.client.delete("/pause", params={"service": "api"}, headers=ADMIN)
    assert lifted.status_code == 204
    await cascade.settle()
    held = (await cascade.json("/status/api"))["promotions"]
    assert [(p["to"], p["state"]) for p in held] == [("api-st", "blocked")]
    assert "is suspect (auto-halt: alert X)" in held[0]["reason"]

    response = await cascade.client.post(
        "/retry", json={"service": "api", "to": "api-st"}, headers=ADMIN
    )
    assert response.status_code == 202, response.text
    assert response.json()["detail"] == "cleared a suspect commit"
    await cascade.settle()
    after = (await cascade.json("/status/api"))["promotions"]
    assert "suspect" not in after[0]["reason"]


async def _has_commit(cascade: Cascade, service: str, app: str, commit: str) -> bool:
    return await cascade.stage_commit(service, app) == commit


# health and OpenAPI ----------------------------------------------------------------------


async def test_healthz_and_readyz(cascade: Cascade) -> None:
    assert (await cascade.client.get("/healthz")).status_code == 200
    ready = await cascade.client.get("/readyz")
    assert ready.status_code == 200
    assert "2 services" in ready.json()["detail"]


async def test_openapi_lists_the_spec_paths(cascade: Cascade) -> None:
    paths = (await cascade.json("/openapi.json"))["paths"]
    missing = [path for path in SPEC_PATHS if path not in paths]
    assert missing == []
    assert set(paths["/pause"]) >= {"post", "delete"}
    # A refused request is documented as it is answered: {"detail": "sentences"}.
    schemas = (await cascade.json("/openapi.json"))["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["ErrorOut"]["properties"]["detail"] == {"title": "Detail", "type": "string"}
    assert (await cascade.client.get("/docs")).status_code == 200


async def test_docs_load_swagger_ui_from_cascade_itself(cascade: Cascade) -> None:
    """No CDN: the page works on a machine with no network."""
    page = await cascade.client.get("/docs")
    assert page.status_code == 200
    assert "://" not in page.text
    assets = re.findall(r'(?:href|src)="([^"]*)"', page.text)
    assert len(assets) == 3  # the style, the favicon, the script
    assert "/openapi.json" in re.findall(r"url: '([^']*)'", page.text)
    types = {}
    for url in assets:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
        answer = await cascade.client.get(url)
        assert answer.status_code == 200, url
        assert len(answer.content) > 500, url
        types[url.rsplit(".", 1)[-1]] = answer.headers["content-type"].split(";")[0]
    assert types == {"css": "text/css", "png": "image/png", "js": "text/javascript"}
    assert (await cascade.client.get("/redoc")).status_code == 404  # its script is a CDN's


# promotion through the sandbox -----------------------------------------------------------


async def test_a_sandbox_deploy_is_promoted(start_cascade: Start) -> None:
    cascade = await start_cascade(min_age="0s")
    assert cascade.runtime.sandbox is not None
    commit = "c" * 40
    await cascade.runtime.sandbox.deploy("api-qa", commit)
    await eventually(
        lambda: _has_commit(cascade, "api", "api-st", commit), "the commit to reach api-st"
    )

    async def promoted() -> list[Json] | None:
        events = await cascade.events(service="api", limit=1000)
        kinds = {e["kind"] for e in events if e["commit"] == commit and e["to"] == "api-st"}
        return events if {"promotion.started", "promotion.succeeded"} <= kinds else None

    events = await eventually(promoted, "promotion.started and promotion.succeeded events")
    started = next(e for e in events if e["kind"] == "promotion.started" and e["to"] == "api-st")
    assert started["from"] == "api-qa"
    assert started["service"] == "api"


async def test_a_sandbox_deploy_is_not_promoted_in_dry_run(start_cascade: Start) -> None:
    cascade = await start_cascade(min_age="0s", dry_run=True)
    assert cascade.runtime.sandbox is not None
    before = await cascade.stage_commit("api", "api-st")
    commit = "c" * 40
    await cascade.runtime.sandbox.deploy("api-qa", commit)

    async def dry_run_event() -> Json | None:
        events = await cascade.events(service="api")
        return next(
            (e for e in events if e["kind"] == "gate.changed" and "dry run" in e["message"]),
            None,
        )

    event = await eventually(dry_run_event, "a gate.changed event saying dry run")
    assert (event["commit"], event["from"], event["to"]) == (commit, "api-qa", "api-st")
    await cascade.settle()
    assert await cascade.stage_commit("api", "api-qa") == commit
    assert await cascade.stage_commit("api", "api-st") == before != commit
    kinds = {e["kind"] for e in await cascade.events(limit=1000)}
    assert not any(kind.startswith("promotion.") for kind in kinds)
    assert cascade.runtime.sandbox.world.promotions == []


# the process ----------------------------------------------------------------------------


async def test_start_up_objects_are_kept_out_of_full_collections_while_it_runs(
    cascade: Cascade,
) -> None:
    # Full collections over every object made at start-up stalled requests 50-80 ms
    # (BENCHMARKS.md); what start-up made is frozen while the app runs.
    assert gc.get_freeze_count() > 0
    # ...and the young generation is collected every 50,000 allocations, not every 700.
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_EVERY


async def test_the_collector_is_as_it_was_once_the_app_stops(
    redis_client: "redis.Redis", redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_environment(monkeypatch)
    before = gc.get_threshold()
    app = create_app(make_settings(redis_url, tmp_path, "1h"))
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        assert gc.get_threshold() != before
    assert gc.get_threshold() == before
