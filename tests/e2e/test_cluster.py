"""Cascade as real processes on a Redis Cluster of three masters, REDIS_URL naming one node.

The sandbox platform is the Platform API; two Cascade processes share the cluster, each
ticking twice a second, so both reconcile, claim and fold through it.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import harness
from tests.e2e.conftest import THREE_STAGES, Cluster, promoted
from tests.redis_cluster import ValkeyCluster

pytestmark = pytest.mark.e2e

A = "a" * 40


@pytest.fixture
def on_cluster(tmp_path: Path, valkey_cluster: ValkeyCluster) -> Iterator[Cluster]:
    valkey_cluster.flush()
    made = Cluster(tmp_path, valkey_cluster.url, THREE_STAGES.format(min_age="0s"))
    made.platform.start()
    yield made
    made.stop()


def test_two_cascades_on_a_cluster_promote_each_commit_once(on_cluster: Cluster) -> None:
    fast = {"CASCADE_TICK_SECONDS": "0.5"}
    first = on_cluster.start_cascade(**fast)
    second = on_cluster.start_cascade(harness.free_port(), "cascade-2", **fast)
    for process in (first, second):
        assert "redis=cluster" in process.output()  # told from the node, not configured
    on_cluster.deploy("api-qa", A)
    on_cluster.wait(lambda: on_cluster.running("api-prod") == A, "A to reach api-prod")
    assert promoted(on_cluster) == {("api-st", A): 1, ("api-prod", A): 1}
    on_cluster.wait(
        lambda: [s["commit"] for s in harness.get(second, "/status/api")["stages"]] == [A] * 3,
        "the other process to see it",
    )
    assert harness.get(first, "/readyz")["detail"].startswith("ready")
    assert "Traceback" not in first.output() + second.output()
