"""The Platform API misbehaving under a running Cascade: 429 with the pool empty, 500 and 503,
answers that never come, and a promotion whose target fails.

Reads are retried with backoff; a promotion POST is sent again only when Heroku provably did
nothing (429), never after an answer that leaves it unsure (5xx, timeout). A failed promotion
is recorded in /status, /events and Slack, and holds its pair until a new commit arrives.
Figures go to RELIABILITY.md (`tests.figures`).
"""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.e2e import harness
from tests.e2e.conftest import (
    THREE_STAGES,
    Cluster,
    clear_faults,
    duplicates,
    pipeline_id,
    platform_requests,
    promoted,
)
from tests.factories import WEB
from tests.figures import Figure, record

pytestmark = [pytest.mark.e2e, pytest.mark.reliability]

A, B, C, D, E = (c * 40 for c in "abcde")
CLIENT_TIMEOUT = 10  # app.heroku.client.HerokuClient's read timeout
KINDS = (
    "429 with RateLimit-Remaining: 0",
    "429 on the promotion POST",
    "500 on a read",
    "503 on a read",
    "503 on the promotion POST after Heroku made it",
    "a read that never answers",
    "a promotion POST that never answers",
    "a promotion target that fails",
)


class Slack(ThreadingHTTPServer):
    """A Slack incoming webhook that keeps every text it is sent."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        super().__init__(("127.0.0.1", 0), _SlackHook)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/services/T0/B0/x"


class _SlackHook(BaseHTTPRequestHandler):
    server: Slack

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.texts.append(json.loads(body)["text"])
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slack() -> Iterator[Slack]:
    server = Slack()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_platform_api_faults_are_retried_where_safe_and_never_promote_twice(
    cluster_factory: Any, slack: Slack
) -> None:
    cluster: Cluster = cluster_factory(THREE_STAGES.format(min_age="0s") + WEB)
    answers = harness.Answers()
    cascade = cluster.start_cascade(CASCADE_TICK_SECONDS="0.5", CASCADE_SLACK_WEBHOOK_URL=slack.url)

    # Rate limited: the pool is empty, and the promotion POST meets a 429 of its own.
    post = {"method": "POST", "path_prefix": "/pipeline-promotions"}
    cluster.faults(rate_limit_remaining=0, errors=[{**post, "status": 429}])
    cluster.deploy("api-qa", A)
    cluster.wait(lambda: cluster.running("api-st") == A, "A through the rate limit", 60)
    clear_faults(cluster)
    cluster.wait(lambda: cluster.running("api-prod") == A, "A to reach api-prod")
    posts = statuses(cluster, "POST", "/pipeline-promotions")
    refused = posts[: posts.index(201)]  # sent again only because a 429 says nothing happened
    assert refused
    assert set(refused) == {429}

    # 500 and 503 on the re-read: retried. 503 on the POST once Heroku made the promotion:
    # never sent again; the target's own release says how it ended.
    reads = {"method": "GET", "path_prefix": "/pipelines/"}
    cluster.faults(
        errors=[
            {**reads, "status": 500},
            {**reads, "status": 503},
            {**post, "status": 503, "after": True},
        ]
    )
    cluster.deploy("api-qa", B)
    cluster.wait(lambda: cluster.running("api-prod") == B, "B to reach api-prod")
    api_reread = f"/pipelines/{pipeline_id(cluster, 'api')}/latest-releases"
    assert {500, 503, 200} <= set(statuses(cluster, "GET", api_reread))

    # Answers that never come in time, held past the client's timeout: api's POST (Heroku
    # made the promotion, Cascade cannot know it) and web's re-read (retried).
    reread = f"/pipelines/{pipeline_id(cluster, 'web')}/latest-releases"
    held = CLIENT_TIMEOUT + 1
    cluster.faults(
        delays=[
            {**post, "seconds": held, "after": True},
            {"method": "GET", "path_prefix": reread, "seconds": held},
        ]
    )
    cluster.deploy("web-dev", C)
    cluster.deploy("api-qa", C)
    cluster.wait(
        lambda: cluster.running("api-prod") == C and cluster.running("web-prod") == C,
        "C to reach api-prod and web-prod",
        5 * CLIENT_TIMEOUT,
    )
    assert len(statuses(cluster, "GET", reread)) >= 2  # the one given up on, and its retry
    unanswered = {"endpoint": "POST /pipeline-promotions", "status": "none"}
    assert harness.metric(cascade, "cascade_heroku_api_calls_total", **unanswered) == 1

    # A promotion whose target fails: recorded and shown; the pair waits for a new commit.
    cluster.faults(fail_promotions=1)
    cluster.deploy("api-qa", D)
    failed = cluster.wait(lambda: pair(answers.json(cascade, "/status/api"), D, "failed"), "D")
    assert "failed" in failed["reason"]
    looked = reconciles(cascade)
    cluster.wait(lambda: reconciles(cascade) >= looked + 4, "the tick to look again, 4 times")
    assert promoted(cluster)[("api-st", D)] == 1  # not retried by itself
    assert pair(answers.json(cascade, "/status/api"), D, "failed")
    events = answers.json(cascade, "/events?service=api&limit=1000")["events"]
    (told,) = [e for e in events if e["kind"] == "promotion.failed"]
    assert (told["commit"], told["to"]) == (D, "api-st")
    assert "failed" in told["message"]
    cluster.wait(lambda: [t for t in slack.texts if ":x:" in t and D[:7] in t], "Slack to hear")

    cluster.deploy("api-qa", E)
    cluster.wait(lambda: cluster.running("api-prod") == E, "E to move the pair on")

    counts = promoted(cluster)
    injected = sum(
        r["status"] in (429, 500, 503) for r in platform_requests(cluster) if r["status"]
    )
    record(
        Figure(
            area="faults",
            check="Platform API: 429 (pool empty), 500, 503, timeouts, a failed target",
            cases=len(KINDS),
            faults=injected + 2 + 1,  # the answers, two timeouts, one failed target
            promotions=sum(counts.values()),
            duplicates=duplicates(counts),
            five_xx=answers.five_xx,
            note="reads retried with backoff; a POST resent only after a 429; the failed"
            " promotion shown in /status, /events and Slack, not retried by itself",
        )
    )
    assert counts == {
        **{(app, commit): 1 for commit in (A, B, C, E) for app in ("api-st", "api-prod")},
        ("web-prod", C): 1,
        ("api-st", D): 1,
    }
    assert answers.five_xx == 0
    assert cluster.running("api-st") == E


def statuses(cluster: Cluster, method: str, path: str) -> list[int | None]:
    return [
        r["status"]
        for r in platform_requests(cluster)
        if (r["method"], r["path"]) == (method, path)
    ]


def pair(status: dict[str, Any], commit: str, state: str) -> dict[str, Any] | None:
    return next(
        (p for p in status["promotions"] if p["commit"] == commit and p["state"] == state), None
    )


def reconciles(process: harness.Process, service: str = "api") -> float:
    return harness.metric(process, "cascade_reconcile_duration_seconds_count", service=service)
