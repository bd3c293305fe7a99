"""The signal gates end to end: real Cascade processes, a real Redis, peers that speak the formats.

An alert firing and an incident opened hold a commit that is otherwise ready, named in
`/status`; their clearing promotes at once (the tick is an hour away). With GitHub, Librato or
the status page unreachable and nothing in the view, the gate is unknown and nothing moves;
when the peer comes back the promotion goes ahead with nobody touching Cascade.
"""

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import FIXTURES
from tests.e2e import harness
from tests.e2e.conftest import THREE_STAGES, Cluster
from tests.e2e.harness import Process
from tests.e2e.peer import Peer
from tests.figures import Figure, record

A = "a" * 40
TOKEN = "e2e-signal-token"
QUICK = {
    "CASCADE_WEBHOOK_TOKEN": TOKEN,
    "CASCADE_SIGNAL_RETRY_SECONDS": "1",
    "CASCADE_POLL_SECONDS": "1",
    "CASCADE_TICK_SECONDS": "3600",
}


def fixture(path: str) -> dict[str, Any]:
    return json.loads((FIXTURES / path).read_text())  # type: ignore[no-any-return]


def send(cascade: Process, path: str, payload: dict[str, Any]) -> httpx.Response:
    response = httpx.post(
        f"{cascade.url}{path}",
        json=payload,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 202, response.text
    return response


def gate(cluster: Cluster, cascade: Process, name: str, state: str, *words: str) -> dict[str, Any]:
    """Wait until A's move out of api-qa shows gate `name` in `state`, its reason saying `words`."""

    def shown() -> dict[str, Any] | None:
        for promotion in harness.get(cascade, "/status/api")["promotions"]:
            found = {g["name"]: g for g in promotion["gates"]}.get(name)
            if promotion["commit"] != A or promotion["from"] != "api-qa" or found is None:
                continue
            if found["state"] == state and all(word in found["reason"] for word in words):
                return promotion  # type: ignore[no-any-return]
        return None

    return cluster.wait(shown, f"the {name} gate {state}, saying {words}")  # type: ignore[no-any-return]


def held_only_by(promotion: dict[str, Any], name: str) -> None:
    others = {g["name"]: g["state"] for g in promotion["gates"] if g["name"] != name}
    assert set(others.values()) == {"open"}, others
    assert promotion["state"] == "blocked"


def test_an_alert_firing_holds_a_ready_commit_and_its_clearing_promotes_at_once(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(
        THREE_STAGES.format(min_age="0s") + 'alerts = ["High CPU Temperature"]\n'
    )
    cascade = cluster.start_cascade(**QUICK)
    firing = fixture("alertmanager/zulip-alertmanager-alert-firing.json")
    assert send(cascade, "/webhooks/alertmanager", firing).json()["services"] == ["api"]
    cluster.deploy("api-qa", A)

    promotion = gate(cluster, cascade, "alerts", "closed", '"High CPU Temperature" firing since')
    held_only_by(promotion, "alerts")
    assert cluster.promotions() == []

    resolved = copy.deepcopy(firing)
    resolved["status"] = "resolved"
    for alert in resolved["alerts"]:  # no real resolved sample was saved (FORMATS.md §6)
        alert["status"], alert["endsAt"] = "resolved", "2017-11-08T21:00:00Z"
    send(cascade, "/webhooks/alertmanager", resolved)
    cluster.wait(lambda: cluster.running("api-prod") == A, "the clearing to let A through")
    assert len(cluster.promotions()) == 2  # once per stage


def test_an_incident_holds_a_ready_commit_and_its_resolution_promotes_at_once(
    cluster_factory: Callable[..., Cluster],
) -> None:
    watched = 'incident_systems = ["Management Portal (example)"]\n'
    cluster = cluster_factory(THREE_STAGES.format(min_age="0s") + watched)
    cascade = cluster.start_cascade(**QUICK)
    send(cascade, "/webhooks/status", fixture("status/statuspage-zulip-incident_created.json"))
    cluster.deploy("api-qa", A)

    promotion = gate(cluster, cascade, "incident", "closed", "Database query delays")
    held_only_by(promotion, "incident")
    assert cluster.promotions() == []

    send(
        cascade,
        "/webhooks/status",
        fixture("status/statuspage-zulip-incident_update-resolved.json"),
    )
    cluster.wait(lambda: cluster.running("api-prod") == A, "the resolution to let A through")
    assert len(cluster.promotions()) == 2


def github_answers(cluster: Cluster) -> Callable[[Peer], None]:
    """GitHub as a peer: A is on main and ahead of whatever the later stages run."""

    def answer(peer: Peer) -> None:
        ahead = {"status": "ahead", "ahead_by": 1, "behind_by": 0, "total_commits": 1}
        peer.answer("GET", f"/repos/acme/api/compare/{A}...main", json=ahead)  # main contains A
        for app in ("api-st", "api-prod"):
            running = cluster.running(app)
            peer.answer("GET", f"/repos/acme/api/compare/{running}...{A}", json=ahead)

    return answer


def librato_answers(cluster: Cluster) -> Callable[[Peer], None]:
    return lambda peer: peer.answer("GET", "/v1/alerts/status", json={"firing": [], "cleared": []})


def status_answers(cluster: Cluster) -> Callable[[Peer], None]:
    green = fixture("status/heroku-status-v4-green-heroku-cli-test-mock.json")
    return lambda peer: peer.answer("GET", "/api/v4/current-status", json=green)


PEERS = [
    pytest.param(
        "github", 'repo = "acme/api"\n', "GITHUB_API_URL", "", github_answers, id="github"
    ),
    pytest.param(
        "alerts",
        'alerts = ["api 5xx rate"]\n',
        "LIBRATO_API_URL",
        "",
        librato_answers,
        id="librato",
    ),
    pytest.param(
        "incident",
        "",
        "STATUS_API_URL",
        "/api/v4/current-status",
        status_answers,
        id="status-page",
    ),
]


@pytest.mark.reliability
@pytest.mark.parametrize(("name", "entry", "variable", "path", "answers"), PEERS)
def test_a_peer_down_with_nothing_in_the_view_holds_everything_until_it_comes_back(
    cluster_factory: Callable[..., Cluster],
    tmp_path: Path,
    name: str,
    entry: str,
    variable: str,
    path: str,
    answers: Callable[[Cluster], Callable[[Peer], None]],
) -> None:
    nobody = harness.free_port()  # nothing listens there yet: connection refused
    cluster = cluster_factory(THREE_STAGES.format(min_age="0s") + entry)
    env = QUICK | {variable: f"http://127.0.0.1:{nobody}{path}"}
    env |= {"LIBRATO_USER": "e2e@example.com", "LIBRATO_TOKEN": "e2e-librato-token"}
    cascade = cluster.start_cascade(**env)
    cluster.deploy("api-qa", A)

    promotion = gate(cluster, cascade, name, "unknown", "ConnectError")  # says what failed
    held_only_by(promotion, name)
    assert cluster.promotions() == []

    late = harness.peer(tmp_path, port=nobody, name=f"{name}-peer")
    cluster.processes.append(late)  # stopped with the cluster
    late.start()
    answers(cluster)(Peer(late.url))
    cluster.wait(lambda: cluster.running("api-prod") == A, f"{name} coming back to let A through")
    assert len(cluster.promotions()) == 2
    record(
        Figure(
            area="faults",
            check=f"signal peer down ({variable} refuses connections), then back",
            cases=1,
            faults=1,
            promotions=2,
            note=f"the {name} gate unknown and nothing promoted while down; promoted once it"
            " answered, with the tick an hour away",
        )
    )
