"""`make serve` twice on one data dir: the sandbox Cascade with its embedded Valkey, restarted.

The restarted sandbox is a new simulated Heroku (new pipeline and app ids, versions from 1
again) while Redis keeps what the first run learnt: the demo must keep promoting, and a pause
made before the restart must still hold.
"""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.e2e import harness

SERVICES = """
[[service]]
name = "api"
pipeline = "api"
stages = ["api-qa", "api-st"]
min_age = "0s"

[[service]]
name = "web"
pipeline = "web"
stages = ["web-qa", "web-prod"]
min_age = "0s"
"""
EVER = datetime.min.replace(tzinfo=UTC)


def serve(tmp: Path, port: int) -> harness.Process:
    """What `make serve` runs: no REDIS_URL (embedded Valkey in the data dir), no Heroku token."""
    config = tmp / "cascade.toml"
    config.write_text(SERVICES)
    env = harness.base_env(
        CASCADE_CONFIG=str(config),
        CASCADE_DATA_DIR=str(tmp / "data"),
        CASCADE_ADMIN_TOKEN=harness.ADMIN,
        CASCADE_SANDBOX_DEPLOY_SECONDS="4",
    )
    env.pop("REDIS_URL", None)
    argv = harness.python("-m", "uvicorn", "app.main:app", "--port", str(port), "--no-access-log")
    return harness.Process("serve", argv, env, port, tmp / "serve.log", "/readyz")


def promoted_since(process: harness.Process, since: datetime) -> list[dict[str, Any]]:
    events = harness.get(process, "/events?service=api&limit=1000")["events"]
    return [
        e
        for e in events
        if e["kind"] == "promotion.succeeded" and datetime.fromisoformat(e["at"]) >= since
    ]


def test_a_restarted_sandbox_keeps_promoting_and_keeps_its_pauses(tmp_path: Path) -> None:
    port = harness.free_port()
    first = serve(tmp_path, port).start()
    try:
        harness.wait_for(lambda: promoted_since(first, EVER), 60, "a first promotion", first)
        paused = httpx.post(
            first.url + "/pause",
            json={"reason": "held over the restart", "service": "web"},
            headers=harness.admin(),
            timeout=10,
        )
        assert paused.status_code == 201, paused.text
    finally:
        first.stop()

    restarted = datetime.now(UTC)  # the same machine's clock stamps the events
    second = serve(tmp_path, port).start()
    try:
        news = harness.wait_for(
            lambda: promoted_since(second, restarted), 60, "a promotion after the restart", second
        )
        assert all(e["to"] == "api-st" for e in news)
        web = harness.get(second, "/status/web")
        assert web["paused"] is not None
        assert web["paused"]["reason"] == "held over the restart"
        api = harness.get(second, "/status/api")
        assert api["problem"] is None
    finally:
        second.stop()
