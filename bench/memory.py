"""5. Memory: resident set of a Cascade worker with 1,000 services, over 100,000 deliveries.

Cascade as the Procfile runs it (one worker), 1,000 services x 10 stages seeded warm,
the peer as its Platform API. wrk sends signed Heroku release deliveries in chunks of
10 seconds (each a new release of one of the 10,000 stage apps, so each is accepted and
reconciled); VmRSS is read after start-up and after every chunk.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import fleet as fleets
from bench import procs
from bench.intake import SCRIPT

FLEET = fleets.Fleet(1_000, 10)
DELIVERIES = 100_000
CHUNK_SECONDS = 10


@dataclass
class Memory:
    started_mb: float = 0.0
    samples: list[tuple[int, float]] = field(default_factory=list)  # (deliveries, MB)
    errors: int = 0
    rate: float = 0.0


def run(log: Callable[[str], None] = print, deliveries: int = DELIVERIES) -> Memory:
    found = Memory()
    with fleets.seeded("memory", FLEET) as seeded:
        tmp, config, peer, apps = seeded.tmp, seeded.config, seeded.peer, seeded.apps
        cascade = procs.cascade(config, seeded.redis_url, peer, tmp)
        with procs.running(cascade):
            procs.wait_quiet(cascade, peer)
            pid = procs.pids(cascade)[0]
            found.started_mb = procs.rss_mb(pid)
            log(f"  memory: {found.started_mb:.1f} MB after start")
            sent, seconds = 0, 0.0
            while sent < deliveries:
                result = _chunk(cascade, apps, seeded.heroku, offset=sent)
                sent += result.requests
                seconds += result.seconds
                found.errors += result.errors
                found.samples.append((sent, procs.rss_mb(pid)))
                log(f"  memory: {found.samples[-1][1]:.1f} MB after {sent:,} deliveries")
            found.rate = sent / seconds if seconds else 0.0
    return found


def _chunk(cascade: procs.Process, apps: Path, template: Path, offset: int) -> procs.WrkResult:
    env = {
        "WRK_KIND": "heroku",
        "WRK_SECRET": procs.SECRET,
        "WRK_PATH": "/webhooks/heroku",
        "WRK_TEMPLATE": str(template),
        "WRK_APPS": str(apps),
        "WRK_OFFSET": str(offset + 500_000_000),
    }
    return procs.wrk(cascade.url, SCRIPT, seconds=CHUNK_SECONDS, connections=8, env=env)
