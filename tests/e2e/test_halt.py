"""The auto-halt end to end: a Cascade process, the sandbox, a real Redis and a real
Alertmanager (Debian's `prometheus-alertmanager`, as in test_alertmanager.py).

A commit promoted to stage 2 of 3; an alert of the service starts firing 5 s later
(`halt_window = "30s"`): the service is paused by "cascade" with the reason on `/status`,
stage 3 never receives the commit, and with `rollback = true` stage 2 runs its previous
release again, once. The same with a status-page incident that opens. An alert already
firing before the promotion halts nothing.
"""

import copy
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import harness
from tests.e2e.conftest import THREE_STAGES, Cluster
from tests.e2e.harness import Process
from tests.e2e.test_alertmanager import ALERTMANAGER, SETTINGS, Alertmanager, Heartbeat
from tests.e2e.test_signals import QUICK, fixture, send

A = "a" * 40
ALERT = {"alertname": "CascadeE2E", "job": "api"}
# Staging takes a commit at once, production 20 s after: the time a halt has to stop it.
HALTING = (
    THREE_STAGES.format(min_age="0s")
    + 'halt_window = "30s"\n{extra}'
    + '[service.stage_min_age]\n"api-prod" = "20s"\n'
)


def paused_by_cascade(cascade: Process, *words: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        paused = harness.get(cascade, "/status/api")["paused"]
        if paused and paused["by"] == "cascade" and all(w in paused["reason"] for w in words):
            return paused  # type: ignore[no-any-return]
        return None

    return check


def events(cascade: Process, kind: str) -> list[dict[str, Any]]:
    found = harness.get(cascade, "/events?service=api&limit=1000")["events"]
    return [e for e in found if e["kind"] == kind]


def promote_to_staging(cluster: Cluster) -> None:
    cluster.deploy("api-qa", A)
    cluster.wait(lambda: cluster.running("api-st") == A, "A promoted to staging")


def test_an_alert_from_alertmanager_halts_and_rolls_back_once(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    if not ALERTMANAGER.exists():
        pytest.fail("Debian's prometheus-alertmanager is missing (apt-get install it)")
    extra = 'alerts = ["CascadeE2E"]\nrollback = true\n'
    cluster = cluster_factory(HALTING.format(extra=extra))
    cascade = cluster.start_cascade(**SETTINGS)
    alertmanager = Alertmanager.configured(tmp_path, cascade.url)
    alertmanager.start()
    cluster.processes.append(alertmanager)  # stopped with the cluster, its log shown on failure
    heartbeat = Heartbeat(alertmanager)
    heartbeat.start()
    try:
        cluster.wait(
            lambda: harness.get(cascade, "/status/api")["promotions"] == [], "a settled start"
        )
        before = cluster.running("api-st")
        promote_to_staging(cluster)
        time.sleep(5)
        alertmanager.post(ALERT, datetime.now(UTC), timedelta(hours=1))
        paused = cluster.wait(
            paused_by_cascade(cascade, "auto-halt: alert CascadeE2E started firing", "api-st"),
            "the halt",
        )
        assert paused["reason"].endswith(f"after {A[:7]} reached api-st")
        cluster.wait(lambda: cluster.running("api-st") == before, "the rollback of api-st")
        time.sleep(25)  # past production's 20 s: A would have moved on by now
    finally:
        heartbeat.stop()
    assert cluster.running("api-prod") != A
    assert cluster.running("api-st") == before
    assert len(cluster.promotions()) == 1  # into staging only
    (halted,) = events(cascade, "service.halted")
    assert (halted["commit"], halted["to"], halted["details"]["signal"]) == (
        A,
        "api-st",
        "alert CascadeE2E",
    )
    assert len(events(cascade, "rollback.started")) == 1
    (rolled,) = events(cascade, "rollback.succeeded")
    assert rolled["details"]["to_commit"] == before


def test_an_incident_that_opens_halts_and_the_commit_waits_for_a_retry(
    cluster_factory: Callable[..., Cluster],
) -> None:
    extra = 'incident_systems = ["Management Portal (example)"]\n'
    cluster = cluster_factory(HALTING.format(extra=extra))
    cascade = cluster.start_cascade(**QUICK)
    resolved = fixture("status/statuspage-zulip-incident_update-resolved.json")
    send(cascade, "/webhooks/status", resolved)  # the status page is heard: nothing open
    promote_to_staging(cluster)
    time.sleep(5)
    opened = copy.deepcopy(fixture("status/statuspage-zulip-incident_created.json"))
    now = datetime.now(UTC).isoformat()
    opened["incident"].update(id="e2e-incident", created_at=now, updated_at=now)
    send(cascade, "/webhooks/status", opened)
    cluster.wait(
        paused_by_cascade(cascade, "auto-halt: incident Database query delays opened", "api-st"),
        "the halt",
    )
    closed = copy.deepcopy(resolved)
    closed["incident"].update(id="e2e-incident", updated_at=datetime.now(UTC).isoformat())
    send(cascade, "/webhooks/status", closed)
    harness.Answers().resume(cascade, "api")  # DELETE /pause: the halt lifted, A still suspect
    time.sleep(25)
    assert cluster.running("api-prod") != A
    (held,) = [
        p for p in harness.get(cascade, "/status/api")["promotions"] if p["to"] == "api-prod"
    ]
    assert held["state"] == "blocked"
    assert "is suspect (auto-halt: incident Database query delays" in held["reason"]
    assert len(events(cascade, "service.halted")) == 1


def test_an_alert_firing_before_the_promotion_halts_nothing(
    cluster_factory: Callable[..., Cluster],
) -> None:
    # A staging alert: it holds promotions out of staging, not into it.
    extra = '[service.stage_alerts]\n"api-st" = ["High CPU Temperature"]\n'
    cluster = cluster_factory(HALTING.format(extra=extra))
    cascade = cluster.start_cascade(**QUICK)
    send(
        cascade,
        "/webhooks/alertmanager",
        fixture("alertmanager/zulip-alertmanager-alert-firing.json"),
    )
    promote_to_staging(cluster)
    time.sleep(3)
    assert harness.get(cascade, "/status/api")["paused"] is None
    assert events(cascade, "service.halted") == []
