"""Logs (`app.logs`): one JSON object per line, carrying the ids, and never a secret.

The formatters and the redaction guard on their own, then a whole in-process Cascade
whose every line, through a webhook and the promotion it causes, is read back.
"""

import contextvars
import io
import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from fastapi import FastAPI

from app import logs
from app.config.settings import Settings
from app.logs import JsonFormatter, Redactor, RequestIds, TextFormatter, secret_values
from tests.conftest import FIXTURES
from tests.e2e.harness import sign
from tests.inprocess import Cascade, cascades, eventually

ADMIN = "admin-token-0123456789"
HOOK_SECRET = "whsec-0123456789abcdef"
GITHUB = "ghp_0123456789abcdefghij"
SERVICES = """
[[service]]
name = "api"
pipeline = "api"
stages = ["api-qa", "api-st"]
min_age = "0s"
"""
Json = dict[str, Any]


def record(message: str, *args: object, **extra: Any) -> logging.LogRecord:
    made = logging.LogRecord("cascade.test", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


# formatters ------------------------------------------------------------------------------


def test_a_json_line_has_the_message_the_context_and_the_fields() -> None:
    with logs.scope(request_id="r-1", service="api"):
        line = JsonFormatter().format(record("hello %s", "there", fields={"commit": "c1"}))
    parsed = json.loads(line)
    assert parsed["message"] == "hello there"
    assert (parsed["level"], parsed["logger"]) == ("info", "cascade.test")
    assert (parsed["request_id"], parsed["service"], parsed["commit"]) == ("r-1", "api", "c1")
    assert parsed["at"].endswith("Z")
    assert "\n" not in line


def test_an_exception_stays_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        made = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), None)
        made.exc_info = sys.exc_info()
    line = JsonFormatter().format(made)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["error"]


def test_text_lines_are_key_value() -> None:
    with logs.scope(service="api"):
        line = TextFormatter().format(record("hi", fields={"commit": "c1", "note": "two words"}))
    assert line.endswith('hi  service=api commit=c1 note="two words"')


def test_scope_ends_with_its_block_and_bind_lasts() -> None:
    with logs.scope(service="api"):
        logs.bind(delivery_id="d-1")
        assert logs.current() == {"service": "api", "delivery_id": "d-1"}
    assert "service" not in logs.current()


# redaction ------------------------------------------------------------------------------


REDACTIONS = [
    pytest.param("key is s3cret-value!", "key is [redacted]!", id="known-secret"),
    pytest.param("Authorization: Bearer abc.def", "Authorization: Bearer [redacted]", id="bearer"),
    pytest.param("rediss://h:pw1@host", "rediss://h:[redacted]@host", id="url-password"),
    pytest.param("/webhooks/x?token=xyz&a=1", "/webhooks/x?token=[redacted]&a=1", id="query"),
    pytest.param("secret=abc password=d", "secret=[redacted] password=[redacted]", id="kv"),
    pytest.param("nothing to hide", "nothing to hide", id="plain"),
    pytest.param("sent BeArEr abc.def", "sent BeArEr [redacted]", id="bearer-any-case"),
    pytest.param("caf\u00e9 \u017fecret=xyz", "caf\u00e9 \u017fecret=[redacted]", id="long-s"),
]

# Cascade's own hints (and lines already redacted once) name where a credential goes,
# never one: each passes the guard unchanged, however often.
HINTS = [
    pytest.param("add ?token=[redacted] to the URL", id="redacted-query"),
    pytest.param("the URL (with ?token=[redacted]).", id="redacted-query-in-brackets"),
    pytest.param("sent Bearer [redacted]); retry", id="redacted-bearer-in-brackets"),
    pytest.param("add ?token=<CASCADE_WEBHOOK_TOKEN> to the URL", id="placeholder-query"),
    pytest.param("or send Authorization: Bearer <it>.", id="placeholder-bearer"),
    pytest.param("rediss://h:[redacted]@host", id="redacted-url-password"),
]


@pytest.mark.parametrize(("text", "expected"), REDACTIONS)
def test_the_guard_redacts(text: str, expected: str) -> None:
    guard = Redactor()
    guard.add("s3cret-value", "tiny", None)  # too short a value is not a secret worth a blank
    assert guard(text) == expected


@pytest.mark.parametrize("text", HINTS)
def test_the_guard_leaves_hints_and_redacted_values_alone(text: str) -> None:
    guard = Redactor()
    assert guard(text) == text
    assert guard(guard(text)) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("?token=[redacted]abc", "?token=[redacted]", id="redacted-then-more"),
        pytest.param("?token=<a>b", "?token=[redacted]", id="placeholder-then-more"),
        pytest.param("Bearer <it>x.y", "Bearer [redacted]", id="bearer-placeholder-then-more"),
    ],
)
def test_a_value_that_only_starts_like_a_hint_is_redacted(text: str, expected: str) -> None:
    assert Redactor()(text) == expected


def test_a_request_that_logged_its_own_line_gets_no_access_line() -> None:
    access = logging.getLogger("uvicorn.access")
    kept: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda made: kept.append(made.getMessage())  # type: ignore[method-assign]
    access.addHandler(handler)
    access.addFilter(filtered := logs.UntoldRequests())
    try:

        def request(path: str, told: bool) -> None:
            if told:
                logs.request_told()
            access.warning('%s - "POST %s HTTP/1.1" %d', "127.0.0.1:1", path, 202)

        contextvars.copy_context().run(request, "/webhooks/heroku", True)
        contextvars.copy_context().run(request, "/pause", False)  # each request its own context
    finally:
        access.removeHandler(handler)
        access.removeFilter(filtered)
    assert kept == ['127.0.0.1:1 - "POST /pause HTTP/1.1" 202']


def test_settings_secrets_are_found() -> None:
    settings = Settings(
        _env_file=None,
        admin_token=ADMIN,
        redis_url="rediss://user:redis-password@host:6379",
        github_token=GITHUB,
    )
    found = secret_values(settings)
    assert {ADMIN, GITHUB, "redis-password"} <= set(found)


# request ids -------------------------------------------------------------------------------


@pytest.fixture
async def echo() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()

    @app.get("/id")
    async def current_id() -> Json:
        return dict(logs.current())

    app.add_middleware(RequestIds)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def test_a_request_id_is_made_bound_and_sent_back(echo: httpx.AsyncClient) -> None:
    response = await echo.get("/id")
    made = response.headers["X-Request-ID"]
    assert len(made) == 32
    assert response.json() == {"request_id": made}


async def test_herokus_request_id_is_kept_and_a_strange_one_replaced(
    echo: httpx.AsyncClient,
) -> None:
    kept = await echo.get("/id", headers={"X-Request-ID": "5a1d-heroku-router-id"})
    assert kept.json()["request_id"] == kept.headers["X-Request-ID"] == "5a1d-heroku-router-id"
    odd = await echo.get("/id", headers={"X-Request-ID": "has spaces\tand tabs"})
    assert odd.headers["X-Request-ID"] != "has spaces\tand tabs"


# a running Cascade ------------------------------------------------------------------------


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every line the whole process logs while the test runs, formatted as in production."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield out
    finally:
        root.removeHandler(handler)


@pytest.fixture
async def cascade(
    redis_client: "redis.Redis",  # flushes Redis before the test
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    captured: io.StringIO,
) -> AsyncIterator[Cascade]:
    config = tmp_path / "services.toml"
    _write(config, SERVICES)
    async with cascades(redis_url, tmp_path, monkeypatch) as start:
        yield await start(
            config_path=config,
            admin_token=ADMIN,
            heroku_webhook_secret=HOOK_SECRET,
            github_token=GITHUB,
        )


async def test_every_line_is_json_with_the_ids_and_no_secret(
    cascade: Cascade, captured: io.StringIO
) -> None:
    sandbox = cascade.runtime.sandbox
    assert sandbox is not None
    commit = (await sandbox.deploy("api-qa"))["slug"]["commit"]

    async def promoted() -> bool:
        return await cascade.stage_commit("api", "api-st") == commit

    await eventually(promoted, "the commit promoted to api-st", 30)
    await cascade.settle()
    # One more delivery, with the ids Heroku's router and webhook would give.
    payload = json.loads((FIXTURES / "heroku" / "api-release-update-mercury.json").read_text())
    payload["data"]["app"]["name"] = "api-qa"
    payload["webhook_metadata"]["delivery"]["id"] = "delivery-0001"
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "Heroku-Webhook-Hmac-SHA256": sign(body, HOOK_SECRET),
        "X-Request-ID": "req-0001",
    }
    response = await cascade.client.post("/webhooks/heroku", content=body, headers=headers)
    assert response.status_code == 202, response.text
    logging.getLogger("cascade.test").warning(
        "a careless line: token %s, Authorization: Bearer %s", ADMIN, GITHUB
    )

    lines = [json.loads(line) for line in captured.getvalue().splitlines()]  # each one JSON
    accepted = [x for x in lines if x["message"].startswith("heroku webhook accepted")]
    (mine,) = [x for x in accepted if x["request_id"] == "req-0001"]
    sent = {d["delivery_id"] for d in sandbox.webhooks.deliveries}
    theirs = [x for x in accepted if x is not mine]
    for line in theirs:  # the sandbox's deliveries: their ids, a request id each
        assert line["delivery_id"] in sent
        assert len(line["request_id"]) == 32
        assert line["service"] == "api"
    assert {x["commit"] for x in theirs} == {commit}
    assert (mine["request_id"], mine["delivery_id"]) == ("req-0001", "delivery-0001")
    assert (mine["service"], mine["commit"]) == ("api", payload["data"]["slug"]["commit"])
    started = [x for x in lines if x.get("event") == "promotion.started"]
    assert [(x["service"], x["commit"]) for x in started] == [("api", commit)]
    reconciling = [
        x for x in lines if x["logger"] in ("app.engine.reconcile", "app.engine.promote")
    ]
    assert all(x["service"] == "api" for x in reconciling)
    text = captured.getvalue()
    for secret in (ADMIN, HOOK_SECRET, GITHUB):
        assert secret not in text
    careless = next(x for x in lines if x["message"].startswith("a careless line"))
    redacted = "a careless line: token [redacted], Authorization: Bearer [redacted]"
    assert careless["message"] == redacted


def _write(path: Path, text: str) -> None:
    path.write_text(text)
