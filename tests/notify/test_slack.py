"""Slack notices: what each says, that a blocked commit is told once, and that Slack never
holds anything up.

A real local HTTP server stands in for Slack's incoming webhook (one that answers,
one that fails, one that hangs), against Cascade run in-process on the sandbox; the
pure parts are tested from tables, and the "blocked too long" bookkeeping on the
session's real Redis with a fixed clock.
"""

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import redis.asyncio as redis

from app.config.settings import Settings
from app.core.models import GateResult, GateState, Plan
from app.core.plan import plan
from app.notify import slack as notify
from app.notify.slack import Notifier, describe, describe_blocked
from app.storage import keys
from app.storage.audit import Event
from app.storage.store import Store
from tests import factories as f
from tests.inprocess import (
    ADMIN,
    Cascade,
    Start,
    cascades,
    clean_environment,
    eventually,
    in_future,
)

A, B, C = "a" * 40, "b" * 40, "c" * 40
SEKRIT = "T000/B000/sekrit-path"  # stands for the secret part of a Slack webhook URL


class Receiver:
    """A local stand-in for Slack: records each notice's text, answers `status`.

    With `hang`, it holds every request until the test ends.
    """

    def __init__(self, status: int = 200, hang: bool = False) -> None:
        self.texts: list[str] = []
        self.requests = 0
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests += 1
                if hang:
                    receiver.release.wait(60)
                receiver.texts.append(json.loads(body)["text"])
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/{SEKRIT}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def said(self, *words: str) -> list[str]:
        return [t for t in self.texts if all(w in t for w in words)]


@pytest.fixture
def receiver_factory() -> Iterator[type[Receiver]]:
    made: list[Receiver] = []

    class Made(Receiver):
        def __init__(self, status: int = 200, hang: bool = False) -> None:
            super().__init__(status, hang)
            made.append(self)

    yield Made
    for receiver in made:
        receiver.close()


@pytest.fixture
async def start(
    redis_client: "redis.Redis",
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Start]:
    async with cascades(redis_url, tmp_path, monkeypatch) as start:
        yield start


async def texts(receiver: Receiver, *words: str, count: int = 1) -> list[str] | None:
    said = receiver.said(*words)
    return said if len(said) >= count else None


# what a notice says --------------------------------------------------------------------


def event(kind: str, message: str, service: str | None = "api") -> Event:
    return Event(kind=kind, message=message, at=f.NOW, service=service, commit=A)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            event("promotion.started", "promoting aaaaaaa from api-qa to api-st: age (ran 1h)"),
            ":arrow_forward: *api*: promoting aaaaaaa from api-qa to api-st: age (ran 1h)",
        ),
        (
            event("promotion.succeeded", "promotion of aaaaaaa to api-st succeeded: released"),
            ":white_check_mark: *api*: promotion of aaaaaaa to api-st succeeded: released",
        ),
        (
            event("promotion.failed", "promotion of aaaaaaa to api-st failed: <boom> & more"),
            ":x: *api*: promotion of aaaaaaa to api-st failed: &lt;boom&gt; &amp; more",
        ),
        (
            event("pause.set", "everything paused: incident 42", service=None),
            ":double_vertical_bar: everything paused: incident 42",
        ),
        (
            event("pause.lifted", "service api resumed"),
            ":arrow_forward: *api*: service api resumed",
        ),
        (event("gate.changed", "aaaaaaa api-qa → api-st: waiting"), None),
        (event("signal.github", "push to main"), None),
        (event("promotion.retry", "cleared for retry"), None),
        (
            event(
                "service.halted",
                "auto-halt: alert X started firing 5s after aaaaaaa reached api-st",
            ),
            ":rotating_light: *api*: auto-halt: alert X started firing 5s after aaaaaaa"
            " reached api-st",
        ),
        (
            event("rollback.failed", "rollback of api-st from aaaaaaa failed: gone"),
            ":x: *api*: rollback of api-st from aaaaaaa failed: gone",
        ),
    ],
    ids=[
        "started",
        "succeeded",
        "failed-escaped",
        "pause-global",
        "lifted",
        "gates-not-told",
        "signal-not-told",
        "retry-not-told",
        "halted",
        "rollback-failed",
    ],
)
def test_describe(given: Event, expected: str | None) -> None:
    assert describe(given) == expected


def blocked_plan(now: object = f.NOW) -> Plan:
    """api-qa runs A, api-st B, and nobody knows which commits ran in api-qa: blocked."""
    stages = (f.stage("api-qa", A), f.stage("api-st", B), f.stage("api-prod", B))
    return plan(f.snapshot(stages, now=now))  # type: ignore[arg-type]


def test_describe_blocked_names_the_gate_and_why() -> None:
    (candidate,) = blocked_plan().candidates
    text = describe_blocked("api", candidate, timedelta(minutes=75))
    assert text.startswith(":warning: *api*: `aaaaaaa` api-qa → api-st has been blocked for 1h15m")
    assert "age is unknown: when the commit reached api-qa is not known" in text
    assert "allow" not in text  # open gates are not named


def test_describe_blocked_without_a_closed_gate_gives_the_plan_reason() -> None:
    (candidate,) = blocked_plan().candidates
    opened = tuple(GateResult(g.name, GateState.OPEN, "fine") for g in candidate.gates)
    held = type(candidate)(candidate.pair, A, candidate.state, opened, "a hotfix: left alone")
    assert describe_blocked("api", held, timedelta(hours=2)).endswith(": a hotfix: left alone")


def test_blocked_after_reads_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_environment(monkeypatch)
    assert Settings(_env_file=None).slack_blocked_after == timedelta(hours=1)  # type: ignore[call-arg]
    parsed = Settings(_env_file=None, slack_blocked_after="1h30m")  # type: ignore[call-arg]
    assert parsed.slack_blocked_after == timedelta(minutes=90)
    with pytest.raises(ValueError, match="not a duration"):
        Settings(_env_file=None, slack_blocked_after="soon")  # type: ignore[call-arg]


# blocked too long: once, across processes ----------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = f.NOW

    def __call__(self) -> object:
        return self.now


def notifier(client: "redis.Redis", clock: Clock, sent: list[str], plans: list[Plan]) -> Notifier:
    """A Notifier that posts to an in-memory Slack, judging the given plans."""

    def slack(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content)["text"])
        return httpx.Response(200)

    async def current() -> list[Plan]:
        return plans

    made = Notifier(
        "https://hooks.slack.invalid/x",
        client,
        store=Store(client),
        plans=current,
        blocked_after=timedelta(hours=1),
        clock=clock,  # type: ignore[arg-type]
        transport=httpx.MockTransport(slack),
    )
    made.start()
    return made


async def settle(*notifiers: Notifier) -> None:
    for made in notifiers:
        await asyncio.wait_for(made._outbox.join(), 5)


async def test_a_commit_blocked_too_long_is_told_once_by_one_of_several_processes(
    redis_client: "redis.Redis",
) -> None:
    clock, sent, plans = Clock(), [], [blocked_plan()]
    processes = [notifier(redis_client, clock, sent, plans) for _ in range(3)]
    try:
        for made in processes:  # first seen blocked now
            await made.check_blocked()
        clock.now = f.NOW + timedelta(minutes=59)
        for made in processes:
            await made.check_blocked()
        await settle(*processes)
        assert sent == []
        clock.now = f.NOW + timedelta(minutes=61)
        for made in processes * 2:
            await made.check_blocked()
        await settle(*processes)
        assert len(sent) == 1
        assert "`aaaaaaa` api-qa → api-st has been blocked for 1h1m" in sent[0]
    finally:
        for made in processes:
            await made.stop()


async def test_blocked_since_comes_from_the_gate_changed_event(
    redis_client: "redis.Redis",
) -> None:
    clock, sent, plans = Clock(), [], [blocked_plan()]
    made = notifier(redis_client, clock, sent, plans)
    try:
        became = Event(
            kind="gate.changed",
            message="blocked",
            at=f.NOW - timedelta(minutes=70),
            service="api",
            commit=A,
            target="api-st",
            details={"state": "blocked"},
        )
        await made.on_event(became)
        await made.check_blocked()
        await settle(made)
        assert len(sent) == 1
        assert "blocked for 1h10m" in sent[0]
    finally:
        await made.stop()


async def test_a_pair_no_longer_blocked_starts_again_from_zero(
    redis_client: "redis.Redis",
) -> None:
    clock, sent, plans = Clock(), [], [blocked_plan()]
    made = notifier(redis_client, clock, sent, plans)
    try:
        await made.check_blocked()
        assert await redis_client.hkeys(keys.blocked_since("api")) == [f"api-st {A}"]
        moving = Event(
            kind="gate.changed",
            message="waiting",
            at=f.NOW,
            service="api",
            commit=A,
            target="api-st",
            details={"state": "waiting"},
        )
        await made.on_event(moving)
        assert await redis_client.hkeys(keys.blocked_since("api")) == []
        await made.check_blocked()  # blocked again, from now
        plans[:] = [Plan("api", (), None)]  # nothing to move any more
        clock.now = f.NOW + timedelta(hours=2)
        await made.check_blocked()
        assert await redis_client.hkeys(keys.blocked_since("api")) == []
        await settle(made)
        assert sent == []
    finally:
        await made.stop()


async def test_a_full_outbox_drops_notices_instead_of_waiting(
    redis_client: "redis.Redis", monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "OUTBOX", 2)
    made = Notifier(
        "https://hooks.slack.invalid/x",
        redis_client,
        store=Store(redis_client),
        plans=lambda: asyncio.sleep(0, []),
        blocked_after=timedelta(hours=1),
    )  # not started: nothing leaves the outbox
    for n in range(5):
        made.say(f"notice {n}")
    assert made._outbox.qsize() == 2
    await made._http.aclose()


# against a running Cascade -------------------------------------------------------------


async def test_promotions_and_pauses_reach_slack_in_order(
    start: Start, receiver_factory: type[Receiver]
) -> None:
    slack = receiver_factory()
    cascade = await start(min_age="0s", slack_webhook_url=slack.url)
    assert cascade.runtime.sandbox is not None
    await cascade.runtime.sandbox.deploy("api-qa", C)
    await eventually(lambda: texts(slack, "succeeded", "api-prod"), "the last promotion's notice")
    started = slack.said(":arrow_forward: *api*: promoting ccccccc from api-qa to api-st")
    succeeded = slack.said(":white_check_mark: *api*: promotion of ccccccc to api-st succeeded")
    assert len(started) == len(succeeded) == 1
    assert slack.texts.index(started[0]) < slack.texts.index(succeeded[0])
    assert not slack.said("gate")  # gate transitions stay in /events

    body = {"reason": "incident 9", "by": "ana", "until": in_future(hours=2)}
    assert (await cascade.client.post("/pause", json=body, headers=ADMIN)).status_code == 201
    (paused,) = await eventually(lambda: texts(slack, "incident 9"), "the pause notice")
    assert paused.startswith(":double_vertical_bar: everything paused: incident 9 (by ana, until ")
    assert (await cascade.client.delete("/pause", headers=ADMIN)).status_code == 204
    await eventually(lambda: texts(slack, ":arrow_forward: everything resumed"), "resumed")


async def test_a_commit_blocked_too_long_is_told_once(
    start: Start, receiver_factory: type[Receiver]
) -> None:
    slack = receiver_factory()
    cascade = await start(
        min_age="0s", slack_webhook_url=slack.url, slack_blocked_after=timedelta(seconds=1)
    )
    assert cascade.runtime.sandbox is not None
    body = {"reason": "freeze", "by": "bo"}  # no end: the allow gate cannot say when it opens
    assert (await cascade.client.post("/pause", json=body, headers=ADMIN)).status_code == 201
    await cascade.runtime.sandbox.deploy("api-qa", C)
    (told,) = await eventually(lambda: texts(slack, ":warning:"), "the blocked notice")
    assert told.startswith(":warning: *api*: `ccccccc` api-qa → api-st has been blocked for ")
    assert "allow is closed: everything paused by bo: freeze" in told
    await asyncio.sleep(1.5)  # three more looks
    assert len(slack.said(":warning:")) == 1


async def test_a_failing_slack_delays_nothing_and_its_url_is_never_logged(
    start: Start, receiver_factory: type[Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    slack = receiver_factory(status=500)
    cascade = await start(min_age="0s", slack_webhook_url=slack.url)
    assert cascade.runtime.sandbox is not None
    with caplog.at_level(logging.INFO):
        await cascade.runtime.sandbox.deploy("api-qa", C)
        await eventually(
            lambda: _runs(cascade, "api-prod", C), "the commit to reach api-prod", timeout=20
        )
        await eventually(lambda: texts(slack, "api-prod", count=2), "notices tried anyway")
        await cascade.runtime.notifier._outbox.join()  # type: ignore[union-attr]
    assert "slack: notice refused with HTTP 500" in caplog.text
    assert SEKRIT not in caplog.text


async def test_a_hanging_slack_delays_nothing(
    start: Start, receiver_factory: type[Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(notify, "TIMEOUT_SECONDS", 60.0)  # hangs longer than the test runs
    slack = receiver_factory(hang=True)
    cascade = await start(min_age="0s", slack_webhook_url=slack.url)
    assert cascade.runtime.sandbox is not None
    began = time.monotonic()
    await cascade.runtime.sandbox.deploy("api-qa", C)
    await eventually(
        lambda: _runs(cascade, "api-prod", C), "the commit to reach api-prod", timeout=20
    )
    paused = time.monotonic()
    response = await cascade.client.post("/pause", json={"reason": "x"}, headers=ADMIN)
    assert response.status_code == 201
    assert time.monotonic() - paused < 1.0
    assert time.monotonic() - began < 20
    assert slack.requests == 1  # the one notice sent is still hanging; the rest wait their turn
    assert slack.texts == []


async def _runs(cascade: Cascade, app: str, commit: str) -> bool:
    return await cascade.stage_commit("api", app) == commit
