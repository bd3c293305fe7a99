"""1. Signal to promotion: from a gate opening to `POST /pipeline-promotions` at the peer.

Cascade runs as the Procfile runs it, against the peer (`bench/peer.py`: the sandbox
with a stopwatch) that also sends it the `api:release` webhooks. Each scenario has a
service of two stages of its own, every other gate open; a trial closes one gate,
deploys a new commit on the first stage, waits until Cascade holds it, opens the gate
and times the promotion. Clocks: the peer stamps the POST's arrival with
CLOCK_MONOTONIC, which the driver (for its own requests) and the peer's webhook sender
(for Cascade's answer to the release webhook) share; the age gate compares the peer's
wall clock with `opens_at`. Scenarios are interleaved trial by trial, in two rounds.

The table is data: a scenario whose route is not in Cascade's OpenAPI document yet is
skipped, and BENCHMARKS.md says so.
"""

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench import procs

POLL = 0.003  # seconds between looks at /status while a trial sets up or settles
AGE_SECONDS = (0.3, 0.5, 0.7, 0.9)  # one age service per value: their gates open apart


@dataclass(frozen=True)
class Scenario:
    key: str  # also the service's name
    title: str
    route: str | None  # the route it needs in Cascade; None: always there
    gate: str | None  # the gate the trial closes; None: the release itself is the news
    toml: str = ""  # extra lines of its [[service]]


SCENARIOS = (
    Scenario("release", "Heroku release webhook (succeeded)", "/webhooks/heroku", None),
    Scenario("pause", "pause lifted (DELETE /pause)", "/pause", "allow"),
    Scenario(
        "alert",
        "alert cleared (Alertmanager resolved)",
        "/webhooks/alertmanager",
        "alerts",
        'alerts = ["BenchAlert"]\n',
    ),
    Scenario(
        "incident",
        "incident resolved (status webhook)",
        "/webhooks/status",
        "incident",
        'incident_systems = ["Bench"]\n',
    ),
)
AGE = Scenario("age", "age gate's one-shot timer (no webhook)", None, "age")


@dataclass
class Latency:
    trials: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # key -> (round, ms)
    skipped: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def services_file(path: Any) -> Any:
    lines = ['[defaults]\nmin_age = "0"\n']
    for s in SCENARIOS:
        lines.append(_service(s.key, s.toml))
    for i, age in enumerate(AGE_SECONDS):
        lines.append(_service(f"age{i}", f'min_age = "{age}"\n'))
    path.write_text("\n".join(lines))
    return path


def _service(name: str, extra: str) -> str:
    return (
        f'[[service]]\nname = "{name}"\npipeline = "{name}"\n'
        f'stages = ["{name}-a", "{name}-b"]\n{extra}'
    )


def run(*, trials: int, log: Callable[[str], None] = print, tree: Path = procs.ROOT) -> Latency:
    found = Latency()
    with procs.scratch("latency") as tmp, procs.valkey(tmp) as redis:
        config = services_file(tmp / "cascade.toml")
        port = procs.free_port()
        hooks = f"http://127.0.0.1:{port}/webhooks/heroku"
        peer = procs.peer(config, tmp, webhook_url=hooks, release_seconds=0.02)
        cascade = procs.cascade(config, redis.url, peer, tmp, port=port, tree=tree)
        with procs.running(peer, cascade), Driver(cascade, peer) as driver:
            procs.wait_quiet(cascade, peer)
            routes = set(procs.get(cascade, "/openapi.json").json()["paths"])
            scenarios = [s for s in SCENARIOS if s.route is None or s.route in routes]
            for s in SCENARIOS:
                if s not in scenarios:
                    found.skipped.append(f"{s.title}: {s.route} is not a route of Cascade yet")
            for s in (*scenarios, AGE):
                found.trials[s.key] = []
            per_batch = len(AGE_SECONDS)
            batches = -(-trials // per_batch)
            for batch in range(batches):
                round_ = 1 if batch < batches / 2 else 2
                for scenario in scenarios:
                    for _ in range(per_batch):
                        _record(found, scenario.key, round_, driver.trial(scenario))
                for ms in driver.age_batch():
                    _record(found, AGE.key, round_, ms)
                if batch % 10 == 9:
                    done = (batch + 1) * per_batch
                    log(f"  latency: {done}/{batches * per_batch} trials of each scenario")
    return found


def _record(found: Latency, key: str, round_: int, ms: float | str) -> None:
    if isinstance(ms, str):
        found.failures.append(f"{key}: {ms}")
    else:
        found.trials[key].append((round_, ms))


class Driver:
    """Drives one trial at a time: close the gate, deploy, wait, open, time the POST."""

    def __init__(self, cascade: procs.Process, peer: procs.Process) -> None:
        self.cascade = httpx.Client(base_url=cascade.url, timeout=10)
        self.peer = httpx.Client(base_url=peer.url, timeout=10)
        self.n = 0

    def __enter__(self) -> "Driver":
        return self

    def __exit__(self, *_: object) -> None:
        self.cascade.close()
        self.peer.close()

    def trial(self, scenario: Scenario) -> float | str:
        self.n += 1
        name, commit = scenario.key, secrets.token_hex(20)
        self._close(scenario)
        self.peer.delete("/_bench")
        self._deploy(f"{name}-a", commit)
        if scenario.gate is None:  # the release webhook is the news: time from its answer
            self._wait(lambda: self._promoted(f"{name}-a"), f"{name}: the promotion")
            answers = [
                a
                for a in self.peer.get("/_bench").json()["answers"]
                if a["app"] == f"{name}-a" and a["commit"] == commit and a["status"] == "succeeded"
            ]
            if not answers:
                return f"trial {self.n}: no answer to the succeeded webhook was recorded"
            opened = answers[0]["at"]
        else:
            self._wait(lambda: self._held(name, commit, scenario.gate), f"{name}: {commit} held")
            opened = self._open(scenario)
        promotions = self._wait(lambda: self._promoted(f"{name}-a"), f"{name}: the promotion")
        self._wait(lambda: self._settled(name, commit), f"{name}: settled on {commit}")
        return (promotions[0]["at"] - opened) * 1000

    def age_batch(self) -> list[float | str]:
        """One deploy per age service at the start of a second; each gate opens apart."""
        now = time.time()
        time.sleep((1 - now % 1) + 0.02)  # release created_at has whole seconds
        self.peer.delete("/_bench")
        commits, opens = {}, {}
        for i, age in enumerate(AGE_SECONDS):
            commits[i] = secrets.token_hex(20)
            created = self._deploy(f"age{i}-a", commits[i])["created_at"]
            at = datetime.fromisoformat(created.replace("Z", "+00:00")) + timedelta(seconds=age)
            opens[i] = at.timestamp()
        self._wait(lambda: len(self._promotions()) >= len(AGE_SECONDS), "the age promotions", 5)
        for i in commits:
            self._wait(lambda i=i: self._settled(f"age{i}", commits[i]), f"age{i} settled")
        by_source = {p["source"]: p for p in self._promotions()}
        results: list[float | str] = []
        for i in commits:
            promotion = by_source.get(f"age{i}-a")
            if promotion is None:
                results.append(f"age{i}: no promotion")
            else:
                results.append((promotion["wall"] - opens[i]) * 1000)
        return results

    # the gates -----------------------------------------------------------

    def _close(self, scenario: Scenario) -> None:
        name = scenario.key
        if scenario.gate == "allow":
            body = {"reason": "bench", "service": name, "by": "bench"}
            self._ok(self.cascade.post("/pause", json=body, headers=procs.ADMIN_HEADERS))
        elif scenario.gate == "alerts":
            self._ok(self._alert("firing"))
        elif scenario.gate == "incident":
            self._ok(self._incident("investigating"))

    def _open(self, scenario: Scenario) -> float:
        if scenario.gate == "allow":
            answer = self.cascade.delete(
                "/pause", params={"service": scenario.key}, headers=procs.ADMIN_HEADERS
            )
        elif scenario.gate == "alerts":
            answer = self._alert("resolved")
        else:
            answer = self._incident("resolved")
        opened = time.monotonic()
        self._ok(answer)
        return opened

    def _alert(self, state: str) -> httpx.Response:
        now = datetime.now(UTC).isoformat()
        alert = {
            "status": state,
            "labels": {"alertname": "BenchAlert", "trial": str(self.n)},
            "annotations": {},
            "startsAt": now,
            "endsAt": now if state == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.invalid/graph",
            "fingerprint": f"bench{self.n:012d}",
        }
        body = {
            "version": "4",
            "groupKey": '{}:{alertname="BenchAlert"}',
            "truncatedAlerts": 0,
            "status": state,
            "receiver": "cascade",
            "groupLabels": {"alertname": "BenchAlert"},
            "commonLabels": {"alertname": "BenchAlert"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.invalid",
            "alerts": [alert],
        }
        return self.cascade.post("/webhooks/alertmanager", json=body, headers=_token())

    def _incident(self, state: str) -> httpx.Response:
        now = datetime.now(UTC).isoformat()
        body = {
            "meta": {"unsubscribe": "http://statuspage.invalid/unsubscribe", "documentation": ""},
            "page": {"id": "benchpage", "status_indicator": "major", "status_description": ""},
            "incident": {
                "id": f"bench-incident-{self.n}",
                "name": "Bench incident",
                "status": state,
                "impact": "major",
                "created_at": now,
                "updated_at": now,
                "shortlink": "http://stspg.invalid/bench",
                "components": [{"id": "benchcomponent", "name": "Bench", "status": "major_outage"}],
                "incident_updates": [],
            },
        }
        return self.cascade.post("/webhooks/status", json=body, headers=_token())

    # what the peer and Cascade say ---------------------------------------

    def _deploy(self, app: str, commit: str) -> dict[str, Any]:
        answer = self.peer.post("/_sandbox/releases", json={"app": app, "commit": commit})
        self._ok(answer)
        release: dict[str, Any] = answer.json()
        return release

    def _promotions(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.peer.get("/_bench").json()["promotions"]
        return found

    def _promoted(self, source: str) -> list[dict[str, Any]]:
        return [p for p in self._promotions() if p["source"] == source]

    def _held(self, name: str, commit: str, gate: str | None) -> bool:
        status = self.cascade.get(f"/status/{name}").json()
        for promotion in status["promotions"]:
            if promotion["commit"] == commit:
                gates = {g["name"]: g["state"] for g in promotion["gates"]}
                return gates.get(gate or "") in ("closed", "unknown")
        return False

    def _settled(self, name: str, commit: str) -> bool:
        status = self.cascade.get(f"/status/{name}").json()
        stages = [s.get("commit") for s in status["stages"]]
        return all(c == commit for c in stages) and not status["promotions"]

    def _wait(self, check: Callable[[], Any], what: str, timeout: float = 10) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            time.sleep(POLL)
        raise TimeoutError(f"latency trial {self.n}: timed out waiting for {what}")

    @staticmethod
    def _ok(answer: httpx.Response) -> None:
        if answer.status_code >= 300:
            raise RuntimeError(f"{answer.request.method} {answer.request.url}: {answer.text}")


def _token() -> dict[str, str]:
    return {"Authorization": f"Bearer {procs.TOKEN}"}
