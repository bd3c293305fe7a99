"""The urls gate end to end: Cascade probes a real peer at decision time and comes back by itself.

The tick is an hour away: whatever moves after the peer changes its answer moves because a
gate that was not open asked to be looked at again (`recheck_at`).
"""

from typing import Any

import pytest

from tests.e2e import harness
from tests.e2e.conftest import THREE_STAGES, Cluster
from tests.e2e.harness import Process
from tests.e2e.peer import Peer
from tests.figures import Figure, record

A = "a" * 40
RETRY = {"CASCADE_SIGNAL_RETRY_SECONDS": "1", "CASCADE_TICK_SECONDS": "3600"}


def with_urls(*urls: str) -> str:
    listed = ", ".join(f'"{url}"' for url in urls)
    return THREE_STAGES.format(min_age="0s") + f"urls = [{listed}]\n"


def urls_gate(cluster: Cluster, cascade: Process, state: str, *words: str) -> dict[str, Any]:
    """Wait until A's promotion out of api-qa shows the urls gate in `state`, saying `words`."""

    def shown() -> dict[str, Any] | None:
        for promotion in harness.get(cascade, "/status/api")["promotions"]:
            gates = {g["name"]: g for g in promotion["gates"]}
            gate = gates.get("urls")
            if promotion["commit"] != A or gate is None or gate["state"] != state:
                continue
            if all(word in gate["reason"] for word in words):
                return {"promotion": promotion, "gate": gate}
        return None

    return cluster.wait(shown, f"the urls gate {state}, saying {words}")  # type: ignore[no-any-return]


def test_a_500_blocks_and_a_200_promotes_without_anyone_touching_cascade(
    cluster_factory: Any, peer: Peer
) -> None:
    ci = f"{peer.url}/ci/api"
    peer.answer("GET", "/ci/api", 500)
    cluster = cluster_factory(with_urls(ci))
    cascade = cluster.start_cascade(**RETRY)
    cluster.deploy("api-qa", A)

    seen = urls_gate(cluster, cascade, "closed", f"{ci} answered 500 Internal Server Error")
    assert seen["promotion"]["state"] == "blocked"
    assert seen["promotion"]["to"] == "api-st"
    others = [g for g in seen["promotion"]["gates"] if g["name"] != "urls"]
    assert {g["state"] for g in others} == {"open"}  # the URL is all that holds it
    assert cluster.promotions() == []
    cluster.wait(lambda: len(peer.requests("/ci/api")) >= 2, "Cascade to ask the URL again")
    assert cluster.promotions() == []

    peer.answer("GET", "/ci/api", 200)
    cluster.wait(lambda: cluster.running("api-prod") == A, "the 200 to let A through")
    asked = peer.requests("/ci/api")
    assert {r["method"] for r in asked} == {"GET"}
    assert asked[-1]["headers"]["user-agent"] == "cascade-urls-gate"
    kinds = [e["kind"] for e in harness.get(cascade, "/events?service=api")["events"]]
    assert "promotion.succeeded" in kinds


@pytest.mark.reliability
def test_a_url_that_does_not_answer_is_unknown_and_nothing_moves_until_it_does(
    cluster_factory: Any, peer: Peer, tmp_path: Any
) -> None:
    nobody = harness.free_port()  # nothing listens there yet: connection refused
    ci, up = f"{peer.url}/ci/api", f"http://127.0.0.1:{nobody}/up"
    peer.down("/ci/api")
    cluster = cluster_factory(with_urls(ci, up))
    cascade = cluster.start_cascade(**RETRY)
    cluster.deploy("api-qa", A)

    seen = urls_gate(
        cluster,
        cascade,
        "unknown",
        f"{ci} did not answer: the connection closed without an answer",
        f"{up} did not answer: connection refused",
    )
    assert seen["promotion"]["state"] == "blocked"
    peer.hang("/ci/api")
    urls_gate(cluster, cascade, "unknown", f"{ci} did not answer: timed out after 5s")
    assert cluster.promotions() == []
    assert cluster.running("api-st") != A

    peer.answer("GET", "/ci/api", 200)
    late = harness.peer(tmp_path, port=nobody, name="late-peer")
    cluster.processes.append(late)  # stopped with the cluster
    late.start()
    Peer(late.url).answer("GET", "/up", 200)
    cluster.wait(lambda: cluster.running("api-prod") == A, "A to move once both URLs answer 200")
    record(
        Figure(
            area="faults",
            check="signal peer down: a URL closing, hanging, refusing; then 200",
            cases=3,
            faults=3,
            promotions=len(cluster.promotions()),
            note="the urls gate unknown and nothing promoted meanwhile; promoted once both"
            " answered 200, with the tick an hour away",
        )
    )
