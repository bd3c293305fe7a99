"""Seed a week of delivery history into a sandbox Cascade and photograph its DORA panel.

`.venv/bin/python scripts/dora_week.py [--out docs/dora.png] [--seed 7]` starts Cascade
in-process on the sandbox (examples/demo.toml, its own embedded Redis in a scratch folder,
no new commit released meanwhile), writes seven days of history through Cascade's own
modules (each commit's first run on the first stage with `Store.add_history`, promotions
and auto-halts as audit events, which `app.storage.dora_record` keeps as it would live), serves the
dashboard on a free port and saves a PNG of its delivery metrics panel, taken by Debian's
Chromium (/usr/bin/chromium) through Playwright. The history is drawn from a seeded random
generator over the seven days before today (UTC): the same seed on the same day, the same
figures.
"""

import argparse
import asyncio
import itertools
import random
import socket
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import uvicorn
from playwright.async_api import async_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from app.config.services import Service  # noqa: E402
from app.config.settings import Settings  # noqa: E402
from app.main import create_app  # noqa: E402
from app.runtime import Runtime  # noqa: E402
from app.storage.audit import Event  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"]
DAYS = 7
COMMITS_A_DAY = (4, 9)  # merges on a working day, fewer at the weekend
SOAK_MINUTES = (20, 120)  # how long a commit runs in a stage before it moves on
HALTS = {"api": 2, "web": 1}  # auto-halts on the last stage over the week


def commits(rng: random.Random, start: datetime) -> list[datetime]:
    """When each commit first ran on the first stage: working hours, weekdays busier."""
    arrivals = []
    for day in range(DAYS):
        weekend = (start + timedelta(days=day)).weekday() >= 5
        low, high = COMMITS_A_DAY
        for _ in range(rng.randint(0, 2) if weekend else rng.randint(low, high)):
            minutes = rng.uniform(9 * 60, 18 * 60)
            arrivals.append(start + timedelta(days=day, minutes=minutes))
    return sorted(arrivals)


def journeys(
    rng: random.Random, stages: tuple[str, ...], arrivals: dict[str, datetime], now: datetime
) -> list[tuple[str, str, datetime]]:
    """(stage, commit, succeeded at) of each promotion: a commit moves on after its soak,
    unless a newer one reached its stage first (Cascade moves the newest)."""
    promoted: list[tuple[str, str, datetime]] = []
    reached = {stages[0]: list(arrivals.items())}
    for source, target in itertools.pairwise(stages):
        moved = []
        entries = reached[source]
        for index, (commit, at) in enumerate(entries):
            when = at + timedelta(minutes=rng.uniform(*SOAK_MINUTES))
            superseded = index + 1 < len(entries) and entries[index + 1][1] < when
            if not superseded and when < now:
                moved.append((commit, when))
                promoted.append((target, commit, when))
        reached[target] = moved
    return promoted


async def seed(runtime: Runtime, service: Service, rng: random.Random, now: datetime) -> None:
    stages = tuple(service.stages or ())
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    moments = commits(rng, midnight - timedelta(days=DAYS))
    arrivals = {f"{rng.getrandbits(160):040x}": at for at in moments}
    places = {commit: index for index, commit in enumerate(arrivals)}
    await runtime.store.add_history(service.name, stages[0], arrivals, places)
    promoted = journeys(rng, stages, arrivals, now)
    for stage, commit, at in promoted:
        source = stages[stages.index(stage) - 1]
        await runtime.audit.record(
            Event(
                kind="promotion.succeeded",
                message=f"promotion of {commit[:7]} to {stage} succeeded",
                at=at,
                service=service.name,
                commit=commit,
                source=source,
                target=stage,
            )
        )
    last = [(commit, at) for stage, commit, at in promoted if stage == stages[-1]]
    for commit, at in rng.sample(last[:-1], min(HALTS.get(service.name, 0), len(last) - 1)):
        await runtime.audit.record(
            Event(
                kind="service.halted",
                service=service.name,
                commit=commit,
                target=stages[-1],
                source=None,
                message="error rate over 2% in the 10 minutes after the promotion",
                at=at + timedelta(minutes=10),
                details={"signal": "alerts", "promoted_at": at.isoformat()},
            )
        )
    await runtime.audit.drain()


async def photograph(port: int, out: Path) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = await browser.new_page(viewport={"width": 1100, "height": 900})
        await page.goto(f"http://127.0.0.1:{port}/")
        await page.locator("#dora").screenshot(path=str(out))
        await browser.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def main(out: Path, seed_value: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        port = free_port()
        settings = Settings(
            _env_file=None,
            config_path=ROOT / "examples" / "demo.toml",
            data_dir=Path(scratch),
            sandbox_deploy_seconds=0,
            port=port,
            log_level="WARNING",
        )
        app = create_app(settings)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        serving = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110  (uvicorn offers no event to wait on)
            await asyncio.sleep(0.05)
        runtime: Runtime = app.state.runtime
        rng = random.Random(seed_value)
        now = runtime.reconciler.clock()
        for service in runtime.config.services:
            await seed(runtime, service, rng, now)
        await photograph(port, out)
        server.should_exit = True
        await serving
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dora.png", help="the PNG")
    parser.add_argument("--seed", type=int, default=7, help="the random history's seed")
    args = parser.parse_args()
    asyncio.run(main(args.out, args.seed))
