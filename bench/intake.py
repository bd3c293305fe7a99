"""3. Webhook intake: signed deliveries per second and latency, against the stack's ceiling.

wrk (Debian's, `signed.lua`) on loopback signs every request with HMAC-SHA256 and sends
it at 8 connections to Cascade (100 services x 10 stages, warm) and, in the same run,
to a bare FastAPI endpoint that only reads the body (`bench/ceiling.py`), both served
by uvicorn with the Procfile's flags. Rounds alternate the servers; the ratio is taken
within each round. Heroku deliveries rotate over the fleet's 1,000 apps, each a new
release version (so each is accepted and reconciled); a dedup run sends every delivery
twice. GitHub pushes go to main of the repository the first service follows, each with
a new head commit and delivery id (so each is recorded, deduplicated by its id, and asks
for a reconcile of that service).
"""

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import fleet as fleets
from bench import payloads, procs, profile

SCRIPT = Path(__file__).with_name("signed.lua")
FLEET = fleets.Fleet(100, 10, repo="acme/bench")  # the repo of the GitHub pushes
CONNECTIONS = 8


@dataclass(frozen=True)
class Kind:
    name: str  # what the table calls it
    sender: str  # wrk script's WRK_KIND
    path: str
    template: str  # file name under the scratch folder


@dataclass
class Run:
    server: str
    kind: str
    workers: int
    round: int
    result: procs.WrkResult


@dataclass
class Intake:
    runs: list[Run] = field(default_factory=list)
    dedup: dict[str, Any] = field(default_factory=dict)
    calls: int = 0  # Platform API calls while Cascade took deliveries
    endpoints: Counter[str] = field(default_factory=Counter)  # ... by endpoint
    skipped: list[str] = field(default_factory=list)
    generator: dict[str, float] = field(default_factory=dict)


KINDS = (
    Kind("Heroku release (1.3 KB)", "heroku", "/webhooks/heroku", "heroku.json"),
    Kind("GitHub push (7 KB)", "github", "/webhooks/github", "github.json"),
)


def run(*, seconds: float, rounds: int, log: Any = print) -> Intake:
    found = Intake()
    with fleets.seeded("intake", FLEET) as seeded:
        tmp, config, peer, apps = seeded.tmp, seeded.config, seeded.peer, seeded.apps
        for workers in (1, 2):
            _one_setting(
                found, tmp, config, seeded.redis_url, peer, apps, workers, seconds, rounds, log
            )
    return found


def _one_setting(
    found: Intake,
    tmp: Path,
    config: Path,
    redis_url: str,
    peer: procs.Process,
    apps: Path,
    workers: int,
    seconds: float,
    rounds: int,
    log: Any,
) -> None:
    cascade = procs.cascade(config, redis_url, peer, tmp, workers=workers)
    ceiling = procs.ceiling(tmp, workers=workers)
    caught_up = _calls(peer) + workers * FLEET.services  # each worker reads each pipeline
    with procs.running(cascade, ceiling):
        procs.wait_quiet(cascade, peer, calls=caught_up)
        routes = set(procs.get(cascade, "/openapi.json").json()["paths"])
        kinds = [k for k in KINDS if k.path in routes]
        for k in KINDS:
            if k not in kinds and workers == 1:
                found.skipped.append(f"{k.name}: {k.path} is not a route of Cascade yet")
        offset = 0
        for round_ in range(1, rounds + 1):
            for kind in kinds:
                servers = [("ceiling", ceiling), ("cascade", cascade)]
                if round_ % 2 == 0:
                    servers.reverse()  # neither always runs first
                for server, process in servers:
                    calls = _endpoints(peer) if server == "cascade" else Counter()
                    offset += 10_000_000
                    result = _wrk(process, kind, tmp, apps, seconds, offset)
                    if server == "cascade":
                        made = _endpoints(peer) - calls
                        found.calls += made.total()
                        found.endpoints += made
                    found.runs.append(Run(server, kind.name, workers, round_, result))
                    log(
                        f"  intake {kind.sender} {server} workers={workers} round {round_}:"
                        f" {result.rate:,.0f}/s p50 {result.p50_ms:.2f} ms"
                        f" p99 {result.p99_ms:.2f} ms errors {result.errors}"
                    )
        if workers == 1:
            found.dedup = _dedup(cascade, peer, tmp, apps, seconds, offset + 10_000_000, log)


def _wrk(
    process: procs.Process,
    kind: Kind,
    tmp: Path,
    apps: Path,
    seconds: float,
    offset: int,
    repeat: int = 1,
) -> procs.WrkResult:
    env = {
        "WRK_KIND": kind.sender,
        "WRK_SECRET": procs.SECRET,
        "WRK_PATH": kind.path,
        "WRK_TEMPLATE": str(tmp / kind.template),
        "WRK_APPS": str(apps),
        "WRK_OFFSET": str(offset),
        "WRK_REPEAT": str(repeat),
    }
    return procs.wrk(
        process.url,
        SCRIPT,
        seconds=seconds,
        connections=CONNECTIONS,
        env=env,
        watch=procs.pids(process),
    )


def _dedup(
    cascade: procs.Process,
    peer: procs.Process,
    tmp: Path,
    apps: Path,
    seconds: float,
    offset: int,
    log: Any,
) -> dict[str, Any]:
    """Every Heroku delivery twice, at full rate: one accepted, one a duplicate, always."""
    kind = KINDS[0]
    before = _outcomes(cascade)
    result = _wrk(cascade, kind, tmp, apps, seconds, offset, repeat=2)
    after = _outcomes(cascade)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    # Send a sample again, one by one: every one of them must be a duplicate now.
    template = (tmp / kind.template).read_text()
    names = [line.split() for line in apps.read_text().splitlines()]
    again = 0
    for n in range(offset, offset + 200):
        body, headers = payloads.signed(kind.sender, template, names, n, procs.SECRET)
        answer = httpx.post(cascade.url + kind.path, content=body, headers=headers, timeout=10)
        again += answer.json().get("status") == "duplicate"
    found = {
        "answered": result.requests,
        "rate": result.rate,
        "accepted": delta.get("accepted", 0),
        "duplicate": delta.get("duplicate", 0),
        "errors": result.errors,
        "resent": 200,
        "resent_duplicate": again,
    }
    log(f"  intake dedup: {found}")
    return found


def _outcomes(process: procs.Process) -> dict[str, float]:
    found: dict[str, float] = {}
    for line in procs.get(process, "/metrics").text.splitlines():
        labels = line.startswith("cascade_webhooks_total{")
        if labels and 'sender="heroku"' in line:
            outcome = re.search(r'outcome="(\w+)"', line)
            if outcome:
                found[outcome.group(1)] = float(line.rsplit(" ", 1)[1])
    return found


def _endpoints(peer: procs.Process) -> Counter[str]:
    return Counter(procs.get(peer, "/_bench/calls").json()["calls"])


def _calls(peer: procs.Process) -> int:
    total: int = procs.get(peer, "/_bench/calls").json()["total"]
    return total


def pairs(found: Intake, kind: str, workers: int) -> list[tuple[Run, Run]]:
    """(Cascade, ceiling) runs of one kind and worker count, round by round."""
    by_round: dict[int, dict[str, Run]] = {}
    for r in found.runs:
        if r.kind == kind and r.workers == workers:
            by_round.setdefault(r.round, {})[r.server] = r
    return [(v["cascade"], v["ceiling"]) for _, v in sorted(by_round.items()) if len(v) == 2]


def profiled(seconds: float, log: Any = print) -> dict[str, Any]:
    """py-spy on the Cascade worker while wrk sends Heroku deliveries (one worker)."""
    with fleets.seeded("profile", FLEET) as seeded:
        tmp, config, peer, apps = seeded.tmp, seeded.config, seeded.peer, seeded.apps
        cascade = procs.cascade(config, seeded.redis_url, peer, tmp)
        with procs.running(cascade):
            procs.wait_quiet(cascade, peer)
            _wrk(cascade, KINDS[0], tmp, apps, 2, 1)  # warm up
            spy = profile.record(procs.pids(cascade)[0], seconds, tmp / "folded.txt")
            result = _wrk(cascade, KINDS[0], tmp, apps, seconds, 10_000_000)
            spy.wait()
            samples, ours, libraries = profile.summary(tmp / "folded.txt")
    log(f"  profile: {samples} samples at {result.rate:,.0f} deliveries/s")
    return {"samples": samples, "rate": result.rate, "ours": ours, "libraries": libraries}
