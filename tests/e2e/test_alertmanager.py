"""The alerts gate against a real Prometheus Alertmanager (Debian's `prometheus-alertmanager`).

Alertmanager runs on loopback with its own storage and no cluster listener, configured by
the `alertmanager.yml` block of docs/alerts.md (timings shortened: group_wait and
group_interval 1 s), its webhook pointing at the Cascade under test. The test plays
Prometheus: it posts alerts to Alertmanager's API, the Watchdog heartbeat among them.

On a new Redis with only the heartbeat firing the gate is known and a commit promotes; an
alert fired through Alertmanager closes the gate; resolving it promotes; the heartbeat
stopping makes the gate unknown. The latencies (fire → gate closed, resolve → promotion)
are printed, never asserted on.
"""

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import harness
from tests.e2e.conftest import THREE_STAGES, Cluster
from tests.e2e.harness import Process

ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")
DOCS = harness.ROOT / "docs" / "alerts.md"
MARK = "<!-- alertmanager.yml: used by tests/e2e/test_alertmanager.py -->"
TOKEN = "e2e-alertmanager-token"
A, B, C = "a" * 40, "b" * 40, "c" * 40
ALERT = {"alertname": "CascadeE2E", "job": "api"}
WATCHDOG = {"alertname": "Watchdog", "severity": "none"}
SETTINGS = {
    "CASCADE_WEBHOOK_TOKEN": TOKEN,
    "CASCADE_SIGNAL_RETRY_SECONDS": "1",
    "CASCADE_POLL_SECONDS": "1",
    "CASCADE_TICK_SECONDS": "3600",
    "CASCADE_ALERTMANAGER_HEARTBEAT": "Watchdog",
    "CASCADE_ALERTMANAGER_HEARTBEAT_MAX_AGE": "6s",
}


def documented_config(cascade_url: str) -> str:
    """docs/alerts.md's alertmanager.yml, pointed at `cascade_url`, its timings shortened."""
    text = DOCS.read_text()
    assert MARK in text, "docs/alerts.md lost its alertmanager.yml block"
    block = text.split(MARK, 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    config = "\n".join(line.removeprefix("   ") for line in block.splitlines())
    config = config.replace("https://<cascade>", cascade_url)
    config = config.replace("<CASCADE_WEBHOOK_TOKEN>", TOKEN)
    config = re.sub(r"group_wait: \S+", "group_wait: 1s", config)
    config = re.sub(r"group_interval: \S+", "group_interval: 1s", config)
    return re.sub(r"repeat_interval: 1m\b", "repeat_interval: 2s", config)


class Alertmanager(Process):
    """A real Alertmanager on a free loopback port, run as a `harness.Process`; `post` plays
    Prometheus."""

    @classmethod
    def configured(cls, tmp: Path, cascade_url: str) -> "Alertmanager":
        config = tmp / "alertmanager.yml"
        config.write_text(documented_config(cascade_url))
        port = harness.free_port()
        argv = [
            str(ALERTMANAGER),
            f"--config.file={config}",
            f"--storage.path={tmp / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip: nothing listens or reaches beyond loopback
            "--log.level=debug",
        ]
        return cls(
            "alertmanager", argv, dict(os.environ), port, tmp / "alertmanager.log", "/-/ready"
        )

    def post(self, labels: dict[str, str], starts: datetime, ends_in: timedelta) -> None:
        """Send an alert as Prometheus does: since `starts` (when the rule began to fire),
        firing until `endsAt`; an `endsAt` that has passed resolves it."""
        ends = datetime.now(UTC) + ends_in
        alert = {"labels": labels, "startsAt": _rfc3339(starts), "endsAt": _rfc3339(ends)}
        response = httpx.post(self.url + "/api/v2/alerts", json=[alert], timeout=5)
        assert response.status_code == 200, response.text


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class Heartbeat:
    """Prometheus's Watchdog rule: re-sent every second, ending a few seconds after the last."""

    def __init__(self, alertmanager: Alertmanager) -> None:
        self.alertmanager = alertmanager
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        starts = datetime.now(UTC)
        while not self.stopped.is_set():
            self.alertmanager.post(WATCHDOG, starts, timedelta(seconds=3))
            self.stopped.wait(1)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(10)


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[Callable[[str], Alertmanager]]:
    if not ALERTMANAGER.exists():
        pytest.fail(
            "Debian's prometheus-alertmanager is missing: `make test` installs it"
            " (apt-get install prometheus-alertmanager)"
        )
    made: list[Alertmanager] = []

    def make(cascade_url: str) -> Alertmanager:
        alertmanager = Alertmanager.configured(tmp_path, cascade_url)
        made.append(alertmanager)
        alertmanager.start()
        return alertmanager

    yield make
    for alertmanager in made:
        alertmanager.stop()


def alerts_gate(cascade: Process, commit: str) -> dict[str, Any] | None:
    for promotion in harness.get(cascade, "/status/api")["promotions"]:
        if promotion["commit"] == commit and promotion["from"] == "api-qa":
            gates: dict[str, dict[str, Any]] = {g["name"]: g for g in promotion["gates"]}
            return gates.get("alerts")
    return None


def gate_is(cascade: Process, commit: str, state: str, *words: str) -> Callable[[], bool]:
    def check() -> bool:
        found = alerts_gate(cascade, commit)
        return bool(found and found["state"] == state and all(w in found["reason"] for w in words))

    return check


def alertmanager_source(cascade: Process) -> dict[str, Any] | None:
    for source in harness.get(cascade, "/status")["sources"]:
        if source["source"] == "alertmanager":
            return source  # type: ignore[no-any-return]
    return None


def test_a_real_alertmanager_closes_opens_and_its_silence_is_unknown(
    cluster_factory: Callable[..., Cluster],
    alertmanager_factory: Callable[[str], Alertmanager],
) -> None:
    cluster = cluster_factory(THREE_STAGES.format(min_age="0s") + 'alerts = ["CascadeE2E"]\n')
    cascade = cluster.start_cascade(**SETTINGS)
    alertmanager = alertmanager_factory(cascade.url)
    heartbeat = Heartbeat(alertmanager)
    logs = (*cluster.processes,)

    def wait(check: Callable[[], Any], what: str, timeout: float = 30) -> None:
        try:
            harness.wait_for(check, timeout, what, *logs)
        except AssertionError as error:
            tail = alertmanager.log.read_text(errors="replace")[-6000:]
            raise AssertionError(f"{error}\n--- alertmanager ---\n{tail}") from None

    # a new Redis, only the heartbeat firing: known, and A goes all the way
    heartbeat.start()
    try:
        wait(lambda: (s := alertmanager_source(cascade)) and not s["stale"], "the first heartbeat")
        cluster.deploy("api-qa", A)
        wait(lambda: cluster.running("api-prod") == A, "A promoted on the heartbeat alone")

        # an alert fired through Alertmanager closes the gate: B waits
        httpx.post(
            cascade.url + "/pause",
            json={"reason": "hold B", "service": "api"},
            headers=harness.admin(),
        ).raise_for_status()
        cluster.deploy("api-qa", B)
        wait(gate_is(cascade, B, "open"), "B's alerts gate open while nothing fires")
        fired, starts = time.monotonic(), datetime.now(UTC)
        alertmanager.post(ALERT, starts, timedelta(hours=1))
        wait(gate_is(cascade, B, "closed", '"CascadeE2E" firing since'), "the alert to close it")
        fire_to_closed = time.monotonic() - fired
        httpx.delete(
            cascade.url + "/pause", params={"service": "api"}, headers=harness.admin()
        ).raise_for_status()
        assert cluster.running("api-st") == A

        # resolving it through Alertmanager promotes B
        resolved = time.monotonic()
        alertmanager.post(ALERT, starts, timedelta(0))
        wait(lambda: cluster.running("api-st") == B, "the resolution to promote B")
        resolve_to_promotion = time.monotonic() - resolved
    finally:
        heartbeat.stop()

    # the heartbeat stops (Watchdog resolves, then nothing): unknown, C waits
    wait(lambda: (s := alertmanager_source(cascade)) and s["stale"], "the heartbeat to stop")
    cluster.deploy("api-qa", C)
    wait(gate_is(cascade, C, "unknown", "Watchdog"), "C's alerts gate unknown")
    assert cluster.running("api-st") == B

    note = (
        f"Alertmanager 0.25 (Debian), group_wait and group_interval 1 s:"
        f" fire -> gate closed {fire_to_closed:.2f} s, resolve -> promotion"
        f" {resolve_to_promotion:.2f} s"
    )
    print(note)  # pytest -s shows it: the latencies are reported, never asserted on
