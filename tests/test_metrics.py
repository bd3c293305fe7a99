"""`GET /metrics` (`app.metrics`): parsed with Prometheus's own text parser, watched moving.

A scripted promotion runs on the in-process sandbox: a commit released on the first stage
is promoted to the second at once and waits an hour before the third.
"""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as redis
from prometheus_client.parser import text_string_to_metric_families

from app.core.models import Candidate, GateResult, GateState, Pair, PairState, Plan, StageView
from app.metrics import Metrics
from app.storage.audit import Event
from tests.e2e.harness import sign
from tests.inprocess import WEBHOOK_SECRET, Cascade, cascades, eventually

SERVICES = """
[[service]]
name = "api"
pipeline = "api"
stages = ["api-qa", "api-st", "api-prod"]
min_age = "0s"
[service.stage_min_age]
"api-prod" = "1h"
"""
A = "a" * 40
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def cascade(
    redis_client: "redis.Redis",  # flushes Redis before the test
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Cascade]:
    config = tmp_path / "services.toml"
    _write(config, SERVICES)
    async with cascades(redis_url, tmp_path, monkeypatch) as start:
        yield await start(config_path=config)


async def scrape(cascade: Cascade) -> Samples:
    response = await cascade.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_counters_move_as_a_promotion_runs(cascade: Cascade) -> None:
    before = await scrape(cascade)
    assert (
        value(before, "cascade_promotions_total", service="api", stage="api-st", result="started")
        == 0
    )
    assert (
        "cascade_webhooks_total",
        frozenset({("sender", "heroku"), ("outcome", "accepted")}),
    ) in before
    reconciles = value(before, "cascade_reconcile_duration_seconds_count", service="api")

    assert cascade.runtime.sandbox is not None
    await cascade.runtime.sandbox.deploy("api-qa", A)

    async def waiting_on_age() -> Samples | None:
        samples = await scrape(cascade)
        closed = value(samples, "cascade_gate_state", service="api", gate="age", state="closed")
        done = value(
            samples, "cascade_promotions_total", service="api", stage="api-st", result="succeeded"
        )
        return samples if closed == 1 and done == 1 else None

    after = await eventually(waiting_on_age, "A on api-st, waiting on age for api-prod", 30)
    for result in ("started", "succeeded"):
        assert (
            value(after, "cascade_promotions_total", service="api", stage="api-st", result=result)
            == 1
        )
    assert (
        value(after, "cascade_promotions_total", service="api", stage="api-prod", result="started")
        == 0
    )
    assert value(after, "cascade_gate_state", service="api", gate="age", state="open") == 0
    assert value(after, "cascade_gate_state", service="api", gate="allow", state="open") == 1
    accepted = value(after, "cascade_webhooks_total", sender="heroku", outcome="accepted")
    assert accepted >= 2  # at least the deploy's create and update; the promotion's may follow
    assert value(after, "cascade_reconcile_duration_seconds_count", service="api") > reconciles
    assert (
        value(
            after,
            "cascade_heroku_api_calls_total",
            endpoint="POST /pipeline-promotions",
            status="201",
        )
        == 1
    )
    reads = value(
        after,
        "cascade_heroku_api_calls_total",
        endpoint="GET /pipelines/{id}/latest-releases",
        status="200",
    )
    assert reads >= 1
    assert 0 < value(after, "cascade_heroku_rate_limit_remaining") <= 4500
    age = after[("cascade_signal_age_seconds", frozenset({("source", "heroku")}))]
    assert 0 <= age < 3600


async def test_webhook_outcomes_are_counted(cascade: Cascade) -> None:
    before = await scrape(cascade)
    body = json.dumps({"resource": "dyno", "action": "create"}).encode()
    headers = {"Content-Type": "application/json"}
    ignored = {**headers, "Heroku-Webhook-Hmac-SHA256": sign(body, WEBHOOK_SECRET)}
    assert (
        await cascade.client.post("/webhooks/heroku", content=body, headers=ignored)
    ).status_code == 202
    forged = {**headers, "Heroku-Webhook-Hmac-SHA256": sign(body, "not-the-secret")}
    assert (
        await cascade.client.post("/webhooks/heroku", content=body, headers=forged)
    ).status_code == 401
    after = await scrape(cascade)
    for outcome, moved in (("ignored", 1), ("refused", 1), ("accepted", 0), ("duplicate", 0)):
        change = value(after, "cascade_webhooks_total", sender="heroku", outcome=outcome) - value(
            before, "cascade_webhooks_total", sender="heroku", outcome=outcome
        )
        assert change == moved, outcome


async def test_every_process_exposes_its_identity(cascade: Cascade) -> None:
    samples = await scrape(cascade)
    (info,) = [labels for name, labels in samples if name == "cascade_info"]
    assert dict(info)["platform"] == "sandbox"
    assert ":" in dict(info)["process"]  # host:pid, to tell dynos apart


async def test_no_created_series_beside_the_counters(cascade: Cascade) -> None:
    """A `_created` series per counter and histogram doubled what a scrape carries."""
    await cascade.client.post("/webhooks/heroku", content=b"{}")  # a refused delivery counts
    response = await cascade.client.get("/metrics")
    assert "cascade_webhooks_total" in response.text
    created = [line for line in response.text.splitlines() if "_created" in line]
    assert created == []


# the gate gauge, from plans ------------------------------------------------------------

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def _plan(*gates: tuple[tuple[str, GateState], ...]) -> Plan:
    pair = Pair(0, StageView("a"), StageView("b"))
    candidates = tuple(
        Candidate(pair, A, PairState.WAITING, tuple(GateResult(n, s, "r") for n, s in each), "r")
        for each in gates
    )
    return Plan("svc", candidates, NOW + timedelta(hours=1))


def test_gate_state_is_the_worst_over_the_waiting_commits() -> None:
    metrics = Metrics("host:1", "sandbox")
    metrics.plan(
        "svc",
        _plan(
            (("age", GateState.OPEN), ("allow", GateState.OPEN)),
            (("age", GateState.CLOSED), ("allow", GateState.OPEN)),
        ),
    )
    get = metrics.registry.get_sample_value
    assert get("cascade_gate_state", {"service": "svc", "gate": "age", "state": "closed"}) == 1
    assert get("cascade_gate_state", {"service": "svc", "gate": "age", "state": "open"}) == 0
    assert get("cascade_gate_state", {"service": "svc", "gate": "allow", "state": "open"}) == 1
    metrics.plan("svc", _plan((("age", GateState.OPEN),)))  # allow's series go, age's change
    assert get("cascade_gate_state", {"service": "svc", "gate": "age", "state": "open"}) == 1
    assert get("cascade_gate_state", {"service": "svc", "gate": "allow", "state": "open"}) is None
    metrics.plan("svc", _plan((("age", GateState.OPEN),)))  # the same again: still there
    assert get("cascade_gate_state", {"service": "svc", "gate": "age", "state": "open"}) == 1
    metrics.plan("svc", _plan())  # nothing waits any more: the series go
    assert get("cascade_gate_state", {"service": "svc", "gate": "age", "state": "closed"}) is None
    assert get("cascade_gate_state", {"service": "svc", "gate": "age", "state": "open"}) is None


async def test_halts_and_rollbacks_are_counted() -> None:
    metrics = Metrics("host:1", "sandbox")
    now = datetime.now(UTC)
    for kind in ("service.halted", "rollback.started", "rollback.succeeded"):
        await metrics.on_event(Event(kind, "…", now, service="api", commit="a", target="api-st"))
    get = metrics.registry.get_sample_value
    assert get("cascade_halts_total", {"service": "api", "stage": "api-st"}) == 1
    labels = {"service": "api", "stage": "api-st", "outcome": "succeeded"}
    assert get("cascade_rollbacks_total", labels) == 1
    assert get("cascade_rollbacks_total", {**labels, "outcome": "started"}) is None


def _write(path: Path, text: str) -> None:
    path.write_text(text)
