"""Redis stopped for a while and restarted from its append-only file, under a running Cascade.

The test runs its own Redis-compatible server (the session's is shared by every test):
Cascade must say it is not ready, answer webhooks with a clear 503 so senders retry,
promote nothing, and carry on by itself once Redis is back, with pauses and the audit
log intact. Figures go to RELIABILITY.md (`tests.figures`).
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.storage.embedded import EmbeddedRedis
from tests.e2e import harness
from tests.e2e.conftest import THREE_STAGES, Cluster, duplicates, promoted
from tests.factories import WEB
from tests.figures import Figure, record

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

A, B = "a" * 40, "b" * 40


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "own-redis", port=harness.free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cluster(tmp_path: Path, own_redis: EmbeddedRedis) -> Iterator[Cluster]:
    made = Cluster(tmp_path, own_redis.url, THREE_STAGES.format(min_age="0s") + WEB)
    made.platform.start()
    yield made
    made.stop()


def test_redis_down_then_back_cascade_refuses_cleanly_and_carries_on(
    cluster: Cluster, own_redis: EmbeddedRedis
) -> None:
    answers, down = harness.Answers(), harness.Answers()  # down: while Redis is away
    # The tick keeps trying throughout; the resync repairs whatever news the outage cost.
    cascade = cluster.start_cascade(CASCADE_TICK_SECONDS="0.5", CASCADE_RESYNC_SECONDS="5")
    answers.pause(cascade, "web", reason="kept through the outage")
    replay = harness.release_hook(cluster.deploy("api-qa", A))
    cluster.wait(lambda: cluster.running("api-prod") == A, "A to reach api-prod")
    before = answers.json(cascade, "/events?limit=1000")["events"]

    own_redis.stop()
    cluster.wait(lambda: down.send("GET", cascade.url + "/readyz").status_code == 503, "unready")
    assert httpx.get(cascade.url + "/healthz").status_code == 200  # alive, only not ready
    for _ in range(10):  # a sender delivering, and retrying, while Redis is away
        down.deliver(cascade, replay)
    for path in ("/status", "/status/api", "/events"):
        down.send("GET", cascade.url + path)
    b = cluster.deploy("api-qa", B)  # the platform's own deliveries of B meet the outage too
    cluster.wait(lambda: refused(cluster, "api-qa", b["version"]), "a delivery of B refused")
    cluster.wait(
        lambda: cascade.output().count("reconcile failed service=api") >= 3,
        "the tick to try, and fail, a few times",
    )
    assert set(down.statuses) == {503}
    assert promoted(cluster) == {("api-st", A): 1, ("api-prod", A): 1}  # nothing while down
    last = down.send("POST", cascade.url + "/webhooks/heroku", **signed(replay))
    assert last.status_code == 503
    assert "Redis" in last.json()["detail"]
    assert last.headers["Retry-After"]
    assert "Redis" in down.send("GET", cascade.url + "/readyz").json()["detail"]

    own_redis.start()  # same port, same data directory: its append-only file
    cluster.wait(lambda: answers.send("GET", cascade.url + "/readyz").status_code == 200, "ready")
    cluster.wait(lambda: cluster.running("api-prod") == B, "B to reach api-prod by itself")
    after = answers.json(cascade, "/events?limit=1000")["events"]
    web = answers.json(cascade, "/status/web")
    counts = promoted(cluster)
    record(
        Figure(
            area="faults",
            check="Redis stopped, then restarted from its AOF, under a running Cascade",
            cases=len(down.statuses),
            faults=1,
            promotions=sum(counts.values()),
            duplicates=duplicates(counts),
            five_xx=answers.five_xx,
            note=f"{len(down.statuses)} deliberate 503s while Redis was down (webhooks,"
            " /readyz, /status, /events), not counted as 5xx",
        )
    )
    assert counts == {("api-st", A): 1, ("api-prod", A): 1, ("api-st", B): 1, ("api-prod", B): 1}
    assert web["paused"]["reason"] == "kept through the outage"
    assert [e for e in after if e in before] == before  # the audit log survived, in order
    assert cascade.proc is not None
    assert cascade.proc.poll() is None  # the same process, never restarted
    assert answers.five_xx == 0


def signed(payload: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(payload).encode()
    headers = {"Heroku-Webhook-Hmac-SHA256": harness.sign(body)}
    return {"content": body, "headers": headers}


def refused(cluster: Cluster, app: str, version: int) -> bool:
    """The platform tried to deliver a webhook of that release, and Cascade answered 503."""
    deliveries = harness.get(cluster.platform, "/_sandbox/webhooks")["deliveries"]
    return any(
        (d["app"], d["version"], d["last_error"]) == (app, version, "HTTP 503") for d in deliveries
    )
