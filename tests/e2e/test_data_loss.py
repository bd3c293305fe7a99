"""Redis loses Cascade's data under two running Cascade processes (`app.storage.epoch`).

Both must notice (one by its own look, the other by the flag the first set), refuse to be
ready, say why in `/status`, promote nothing, and resume everywhere once an operator confirms
with `POST /recover` on either of them.
"""

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

from tests.e2e import harness
from tests.e2e.conftest import Cluster

pytestmark = pytest.mark.e2e

A, B = "a" * 40, "b" * 40


def unready(process: harness.Process) -> str | None:
    response = httpx.get(process.url + "/readyz", timeout=10)
    return response.json()["detail"] if response.status_code == 503 else None


def decided_ready(process: harness.Process, commit: str) -> dict[str, Any] | None:
    """The audit entry of a decision that found `commit` ready to move to api-st."""
    events = harness.get(process, "/events?service=api&limit=1000")["events"]
    return next(
        (
            e
            for e in events
            if e["kind"] == "gate.changed"
            and e["commit"] == commit
            and e["to"] == "api-st"
            and e["details"]["state"] == "ready"
        ),
        None,
    )


def test_a_flush_stops_every_process_until_recovered(
    cluster_factory: Callable[..., Cluster], redis_url: str
) -> None:
    cluster = cluster_factory()
    first = cluster.start_cascade()
    second = cluster.start_cascade(port=harness.free_port(), name="second")
    cluster.deploy("api-qa", A)
    cluster.wait(lambda: cluster.running("api-prod") == A, "A to reach api-prod")

    redis.Redis.from_url(redis_url).flushall()  # a failover to a replica that lagged
    reason = cluster.wait(lambda: unready(first) or unready(second), "a process to notice")
    assert "Redis lost Cascade's data" in reason
    assert "POST /recover" in reason
    cluster.wait(lambda: unready(first) and unready(second), "both to say so")
    for process in (first, second):
        status = harness.get(process, "/status")
        assert status["problem"] is not None
        assert all(s["problem"] == status["problem"] for s in status["services"])

    cluster.deploy("api-qa", B)
    cluster.wait(lambda: decided_ready(first, B) or decided_ready(second, B), "B decided ready")
    assert all(p["commit"] != B for p in cluster.promotions())

    recovered = httpx.post(second.url + "/recover", headers=harness.admin(), timeout=10)
    assert recovered.status_code == 202, recovered.text
    cluster.wait(lambda: not unready(first) and not unready(second), "both ready again")
    cluster.wait(lambda: cluster.running("api-prod") == B, "B to reach api-prod")
    assert sum(p["commit"] == B for p in cluster.promotions()) == 2  # api-st, then api-prod
