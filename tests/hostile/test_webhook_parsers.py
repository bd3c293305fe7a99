"""Every webhook parser, through its HTTP route: any authentic body gets an answer, never a 5xx.

Hypothesis writes correctly authenticated deliveries of three kinds: arbitrary JSON,
arbitrary bytes (deep nesting included) and the real samples of tests/fixtures/<sender>/
with values replaced by edge cases or deleted. Each must be answered 200/202 with the
documented answer, or 400/413/422 with a JSON `detail`: a typed event or a clear error.
Afterwards, whatever was accepted must not have broken what Cascade shows.
"""

import asyncio
import json
import logging
import traceback
from collections import Counter

import pytest
from hypothesis import given, settings

from app.webhooks.intake import WebhookAnswer
from tests.figures import Figure
from tests.hostile.conftest import SECRETS, Tally, landed, senders
from tests.hostile.senders import SENDERS, Delivery, Sender, deliveries, encode
from tests.inprocess import Cascade

pytestmark = pytest.mark.reliability
ANSWERED = {200, 202}
REFUSED = {400, 413, 422}
KINDS = ("json", "bytes", "sample")
STILL_READABLE = ("/status", "/status/api", "/status/web", "/events", "/metrics", "/", "/readyz")


async def send(cascade: Cascade, sender: Sender, delivery: Delivery) -> tuple[int, str]:
    """The answer's status and body; an exception escaping the app counts as a 500."""
    secret = SECRETS[sender.setting]
    headers, params = sender.credentials(delivery.body, secret, delivery.way)
    try:
        response = await cascade.client.post(
            sender.path,
            content=delivery.body,
            headers={**delivery.headers, **headers},
            params=params,
        )
    except Exception:
        return 500, traceback.format_exc()
    return response.status_code, response.text


def problem(status: int, text: str) -> str | None:
    """What is wrong with an answer to an authentic delivery, or None."""
    if status not in ANSWERED | REFUSED:
        return f"answered {status}"
    try:
        body = json.loads(text)
    except ValueError:
        return f"answered {status} with a body that is not JSON"
    if status in ANSWERED:
        try:
            WebhookAnswer.model_validate(body)
        except ValueError as error:
            return f"answered {status} with an undocumented body: {error}"
    elif not (isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"]):
        return f"answered {status} without a JSON detail"
    return None


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sender", senders(*SENDERS))
async def test_any_authentic_delivery_gets_an_answer(
    hostile: Cascade,
    sender: Sender,
    kind: str,
    caplog: pytest.LogCaptureFixture,
    tally: Tally,
) -> None:
    caplog.set_level(logging.WARNING)
    loop = asyncio.get_running_loop()
    statuses: Counter[int] = Counter()

    @settings(settings.get_profile("hostile"))
    @given(deliveries(sender, kind))
    def attempt(delivery: Delivery) -> None:
        sent = asyncio.run_coroutine_threadsafe(send(hostile, sender, delivery), loop)
        status, text = sent.result(timeout=60)
        statuses[status] += 1
        wrong = problem(status, text)
        assert wrong is None, f"{wrong}\nbody sent: {delivery.body[:500]!r}\n{text[-3000:]}"

    try:
        await asyncio.to_thread(attempt)  # Hypothesis drives; the app runs on this loop
    finally:
        seen = ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items()))
        tally.add(
            Figure(
                area="hostile input",
                check=f"{sender.path}: authentic bodies",
                cases=sum(statuses.values()),
                five_xx=sum(n for status, n in statuses.items() if status >= 500),
                note="Hypothesis, derandomized: arbitrary JSON, bytes, mutated real samples",
            ),
            f"{kind}: {seen}",
        )
    await hostile.settle()  # the reconciles the accepted ones queued
    for path in STILL_READABLE:
        response = await hostile.client.get(path)
        assert response.status_code == 200, (path, response.text[-2000:])
    crashed = [r for r in caplog.records if r.exc_info and r.levelno >= logging.ERROR]
    assert crashed == [], [r.getMessage() for r in crashed]


@pytest.mark.parametrize("sender", senders(*SENDERS))
async def test_deep_nesting_is_a_clear_400(hostile: Cascade, sender: Sender) -> None:
    """JSON nested deeper than Python recurses: a 400, not a RecursionError escaping."""
    body = b"[" * 100_000 + b"]" * 100_000
    status, text = await send(hostile, sender, Delivery("bytes", body, {}, 0))
    assert status == 400, text[-2000:]
    assert "JSON" in json.loads(text)["detail"]


# Inputs Hypothesis found, kept so that they run on every run whatever it draws. Those
# were 500s in the Librato and Alertmanager parsers (a time past year 9999, one with no zone).
LIBRATO_HUGE_TIME = {"alert": {"id": 1, "name": "collectd.high.load"}, "trigger_time": 2**63}
ALERTMANAGER_NAIVE_TIME = {
    "version": "4",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "High CPU Temperature"},
            "startsAt": "2024-01-01T00:00:00",  # no zone
        }
    ],
}
FOUND = [
    pytest.param("heroku", b"[" * 50_000 + b"]" * 50_000, id="heroku-deep-nesting"),
    pytest.param(
        "librato",
        encode(LIBRATO_HUGE_TIME),
        id="librato-trigger-time-past-year-9999",
    ),
    pytest.param(
        "alertmanager",
        encode(ALERTMANAGER_NAIVE_TIME),
        id="alertmanager-starts-at-without-zone",
    ),
]


@pytest.mark.parametrize(("name", "body"), FOUND)
async def test_inputs_found_before(hostile: Cascade, name: str, body: bytes) -> None:
    sender = next(s for s in SENDERS if s.name == name)
    if not landed(sender):
        pytest.skip(f"{sender.path} is not in the app's OpenAPI yet")
    delivery = Delivery("sample", body, {"Content-Type": "application/json"}, 0)
    status, text = await send(hostile, sender, delivery)
    assert problem(status, text) is None, text[-3000:]
