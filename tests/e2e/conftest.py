"""A sandbox platform process and a Cascade process per test, on the session's real Redis."""

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import harness
from tests.e2e.harness import Process
from tests.e2e.peer import Peer

THREE_STAGES = """
[[service]]
name = "api"
pipeline = "api"
stages = ["api-qa", "api-st", "api-prod"]
min_age = "{min_age}"
"""


class Cluster:
    """One sandbox and the Cascade processes pointed at it; stopped at the end of the test."""

    def __init__(
        self, tmp: Path, redis_url: str, config: str, sandbox_flags: Sequence[str] = ()
    ) -> None:
        self.tmp, self.redis_url = tmp, redis_url
        self.config = tmp / "cascade.toml"
        self.config.write_text(config)
        self.cascade_port = harness.free_port()
        self.platform = harness.sandbox(self.config, self.cascade_port, tmp, flags=sandbox_flags)
        self.processes: list[Process] = [self.platform]

    def start_cascade(self, port: int | None = None, name: str = "cascade", **env: str) -> Process:
        process = harness.cascade(
            self.config,
            self.redis_url,
            self.platform,
            self.tmp,
            port or self.cascade_port,
            name,
            **env,
        )
        self.processes.append(process)
        return process.start()

    def deploy(self, app: str, commit: str) -> dict[str, Any]:
        response = httpx.post(
            self.platform.url + "/_sandbox/releases", json={"app": app, "commit": commit}
        )
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def promotions(self) -> list[dict[str, Any]]:
        return harness.get(self.platform, "/_sandbox/promotions")["promotions"]  # type: ignore[no-any-return]

    def running(self, app: str) -> str | None:
        current = harness.get(self.platform, "/_sandbox/state")["apps"][app]["current"]
        return current["commit"] if current else None

    def faults(self, **faults: Any) -> None:
        httpx.post(self.platform.url + "/_sandbox/faults", json=faults).raise_for_status()

    def wait(self, check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        return harness.wait_for(check, timeout, what, *self.processes)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()


@pytest.fixture
def cluster_factory(
    tmp_path: Path, redis_url: str, redis_client: Any
) -> Iterator[Callable[..., Cluster]]:
    """Build a cluster from a services file; `redis_client` flushes Redis first."""
    made: list[Cluster] = []

    def make(
        config: str = THREE_STAGES.format(min_age="0s"), sandbox_flags: Sequence[str] = ()
    ) -> Cluster:
        cluster = Cluster(tmp_path, redis_url, config, sandbox_flags)
        cluster.platform.start()
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()


@pytest.fixture(scope="session")
def peer_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """One programmable HTTP peer for the whole session; each test resets it."""
    process = harness.peer(tmp_path_factory.mktemp("peer")).start()
    yield process
    process.stop()


@pytest.fixture
def peer(peer_process: Process) -> Peer:
    """The peer with nothing set and nothing seen: see `tests.e2e.peer` for its control API."""
    made = Peer(peer_process.url)
    made.reset()
    return made


# The fault tests (tests/e2e/test_faults*.py) -------------------------------------------


def promoted(cluster: Cluster) -> Counter[tuple[str, str]]:
    """How many promotions the platform made of each (target app, commit)."""
    return Counter((t, p["commit"]) for p in cluster.promotions() for t in p["target_apps"])


def duplicates(counts: Counter[tuple[str, str]]) -> int:
    """Promotions beyond the first of each (target app, commit)."""
    return sum(n - 1 for n in counts.values() if n > 1)


def platform_requests(cluster: Cluster) -> list[dict[str, Any]]:
    """Every Platform API request the sandbox received; `status` None while unanswered."""
    return harness.get(cluster.platform, "/_sandbox/requests")["requests"]  # type: ignore[no-any-return]


def pipeline_id(cluster: Cluster, name: str) -> str:
    pipelines = harness.get(cluster.platform, "/_sandbox/state")["pipelines"]
    return next(p["id"] for p in pipelines if p["name"] == name)  # type: ignore[no-any-return]


def clear_faults(cluster: Cluster) -> None:
    httpx.delete(cluster.platform.url + "/_sandbox/faults").raise_for_status()


def unsubscribe(cluster: Cluster, app: str) -> None:
    """Drop the app's webhook subscriptions: Cascade hears of its releases only from the test."""
    url = f"{cluster.platform.url}/apps/{app}/webhooks"
    for hook in httpx.get(url, headers=harness.PLATFORM_HEADERS).json():
        deleted = httpx.delete(f"{url}/{hook['id']}", headers=harness.PLATFORM_HEADERS)
        deleted.raise_for_status()
