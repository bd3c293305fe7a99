"""Running it in production, on real processes: SIGTERM mid-promotion, webhook subscriptions
kept by Cascade itself, SIGHUP reloads, JSON logs with no secret, and /metrics.

The sandbox is the Platform API peer; Redis is the session's real server.
"""

import json
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e import harness
from tests.e2e.conftest import THREE_STAGES, Cluster
from tests.e2e.harness import Process
from tests.factories import WEB

A, B = "a" * 40, "b" * 40
SECRETS = (harness.SECRET, harness.ADMIN, "e2e-platform-token")
API_HEADERS = {
    "Authorization": "Bearer operator",
    "Accept": "application/vnd.heroku+json; version=3",
}


def promoted(cluster: Cluster) -> Counter[tuple[str, str]]:
    return Counter((t, p["commit"]) for p in cluster.promotions() for t in p["target_apps"])


def terminate(process: Process, timeout: float = 30) -> bool:
    """SIGTERM, as Heroku sends it (and SIGKILL 30 s later): True when it shut down cleanly.

    uvicorn raises the signal again once its shutdown is complete, so a clean exit is
    -SIGTERM as often as 0; the lifespan's last line says the shutdown ran to its end.
    """
    assert process.proc is not None
    process.proc.send_signal(signal.SIGTERM)
    code = process.proc.wait(timeout)
    process.proc = None
    stopped = any(x["message"] == "cascade stopped" for x in json_lines(process))
    return code in (0, -signal.SIGTERM) and stopped


def locks(redis_url: str) -> list[str]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return list(client.scan_iter("cascade:*:lock"))
    finally:
        client.close()


def json_lines(process: Process) -> list[dict[str, Any]]:
    """Every line Cascade wrote, each one a JSON object (stderr is no terminal here)."""
    return [json.loads(line) for line in process.output().splitlines() if line.strip()]


def no_secret_in(process: Process) -> None:
    text = process.output()
    for secret in SECRETS:
        assert secret not in text


# SIGTERM -------------------------------------------------------------------------------


def test_sigterm_mid_promotion_finishes_it_and_leaves_no_lock(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory()
    cascade = cluster.start_cascade()
    cluster.faults(promotion_response_delay=3)  # Heroku holds its answer: the POST is in flight
    cluster.deploy("api-qa", A)
    cluster.wait(lambda: cluster.promotions(), "the promotion POST to reach the platform")
    assert terminate(cascade)
    assert locks(cluster.redis_url) == []
    lines = json_lines(cascade)
    assert any(x["message"].startswith("shutdown: finishing the reconcile of api") for x in lines)
    assert not any("handing back" in x["message"] for x in lines)
    no_secret_in(cascade)

    cluster.faults(promotion_response_delay=0)
    cluster.start_cascade(name="cascade-restarted")
    cluster.wait(lambda: cluster.running("api-prod") == A, "A to reach api-prod after restart")
    assert promoted(cluster) == {("api-st", A): 1, ("api-prod", A): 1}


def test_sigterm_past_the_grace_hands_the_promotion_back(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    cluster = cluster_factory()
    cascade = cluster.start_cascade(CASCADE_SHUTDOWN_SECONDS="0.5")
    cluster.faults(promotion_response_delay=5)  # far past the 0.5 s grace
    cluster.deploy("api-qa", A)
    cluster.wait(lambda: cluster.promotions(), "the promotion POST to reach the platform")
    assert terminate(cascade)
    assert locks(cluster.redis_url) == []
    handed = [x for x in json_lines(cascade) if "handing back the reconcile of api" in x["message"]]
    assert handed

    cluster.faults(promotion_response_delay=0)
    restarted = cluster.start_cascade(name="cascade-restarted")
    cluster.wait(lambda: cluster.running("api-prod") == A, "A to reach api-prod after restart")
    assert promoted(cluster) == {("api-st", A): 1, ("api-prod", A): 1}  # never POSTed twice
    events = harness.get(restarted, "/events?service=api")["events"]
    assert [e["to"] for e in events if e["kind"] == "promotion.succeeded"] == ["api-prod", "api-st"]


# webhook subscriptions -----------------------------------------------------------------


def test_an_entry_in_the_services_file_is_all_onboarding_takes(
    tmp_path: Path, redis_url: str, redis_client: Any
) -> None:
    config = tmp_path / "cascade.toml"
    config.write_text(THREE_STAGES.format(min_age="0s"))
    port = harness.free_port()
    argv = harness.python(
        "-m",
        "app.sandbox",
        "--port",
        str(port),
        "--config",
        str(config),
        "--release-seconds",
        "0.2",
    )  # fmt: skip  (no --webhook-url: no app is subscribed to anything)
    platform = Process(
        "sandbox", argv, harness.base_env(), port, tmp_path / "sandbox.log", "/_sandbox/state"
    ).start()
    cascade_port = harness.free_port()
    public = f"http://127.0.0.1:{cascade_port}"
    cascade = harness.cascade(
        config, redis_url, platform, tmp_path, cascade_port, CASCADE_PUBLIC_URL=public
    )
    try:
        cascade.start()

        def subscribed() -> dict[str, list[Any]] | None:
            found = {
                app: httpx.get(f"{platform.url}/apps/{app}/webhooks", headers=API_HEADERS).json()
                for app in ("api-qa", "api-st", "api-prod")
            }
            return found if all(len(hooks) == 1 for hooks in found.values()) else None

        hooks = harness.wait_for(subscribed, 30, "a subscription on every stage", cascade)
        for (hook,) in hooks.values():
            assert (hook["url"], hook["include"], hook["level"]) == (
                public + "/webhooks/heroku",
                ["api:release"],
                "sync",
            )
        httpx.post(
            platform.url + "/_sandbox/releases", json={"app": "api-qa", "commit": A}
        ).raise_for_status()

        def running(app: str) -> str | None:
            state = harness.get(platform, "/_sandbox/state")["apps"][app]["current"]
            return state["commit"] if state else None

        harness.wait_for(lambda: running("api-prod") == A, 30, "A to reach api-prod", cascade)

        def delivered() -> list[Any] | None:
            found: list[Any] = harness.get(platform, "/_sandbox/webhooks")["deliveries"]
            return found if {d["status"] for d in found} == {"succeeded"} else None

        # All accepted: signed with the secret Cascade gave the subscriptions.
        deliveries = harness.wait_for(delivered, 30, "every delivery to succeed", cascade)
        assert {d["url"] for d in deliveries} == {public + "/webhooks/heroku"}

        families = text_string_to_metric_families(httpx.get(cascade.url + "/metrics").text)
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
        }
        accepted = (("outcome", "accepted"), ("sender", "heroku"))
        assert samples[("cascade_webhooks_total", accepted)] == len(deliveries)
        created = (("endpoint", "POST /apps/{app}/webhooks"), ("status", "201"))
        assert samples[("cascade_heroku_api_calls_total", created)] == 3

        lines = json_lines(cascade)
        webhooks = [x for x in lines if x["message"].startswith("heroku webhook accepted")]
        assert webhooks
        assert all(x["delivery_id"] and x["request_id"] and x["service"] == "api" for x in webhooks)
        assert {x["commit"] for x in webhooks} >= {A}
        no_secret_in(cascade)
    finally:
        cascade.stop()
        platform.stop()


# reload --------------------------------------------------------------------------------


def test_sighup_reloads_the_services_file(cluster_factory) -> None:  # type: ignore[no-untyped-def]
    api = THREE_STAGES.format(min_age="0s")
    cluster = cluster_factory(api + WEB)  # the sandbox knows both pipelines
    cluster.config.write_text(api)  # Cascade starts with one service
    cascade = cluster.start_cascade(CASCADE_RELOAD_SECONDS="0")
    assert [s["name"] for s in harness.get(cascade, "/status")["services"]] == ["api"]

    cluster.config.write_text(api + WEB)
    assert cascade.proc is not None
    cascade.proc.send_signal(signal.SIGHUP)
    cluster.wait(lambda: len(harness.get(cascade, "/status")["services"]) == 2, "SIGHUP to add web")
    cluster.deploy("web-dev", B)
    cluster.wait(lambda: cluster.running("web-prod") == B, "B promoted on the new service")

    cluster.config.write_text(api + WEB.replace("stages", "stagez"))
    cascade.proc.send_signal(signal.SIGHUP)
    cluster.wait(
        lambda: any("NOT reloaded" in x["message"] for x in json_lines(cascade)),
        "the broken file to be refused",
    )
    (refusal,) = [x for x in json_lines(cascade) if "NOT reloaded" in x["message"]]
    assert refusal["level"] == "error"
    assert '"stagez"' in refusal["message"]
    assert cascade.proc.poll() is None  # still running, on the previous file
    assert len(harness.get(cascade, "/status")["services"]) == 2
