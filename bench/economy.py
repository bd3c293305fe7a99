"""2. Platform API economy: calls per service-hour idle, calls per promotion, and pacing.

Cascade in-process on the in-process sandbox (a counting Platform API peer with Heroku's
4,500-call pool), 100 services x 10 stages. An idle hour is simulated, not waited for:
60 ticks, and every 15 minutes the resync marks expire as Redis would expire them
(CASCADE_RESYNC_SECONDS = 900). Cascade runs with CASCADE_PUBLIC_URL, so the hour holds
every webhook subscription check it asks for: none while every release comes by webhook
(a check is made at start-up, after a reload, and for an app whose release a resync found
first). What one such unannounced release costs is measured on its own: one stage app's
subscriptions deleted, a release on it, the resync that finds it. Calls are counted by the
client (`HerokuClient.calls`), so nothing is missed or double-counted.
`tests/engine/test_economy.py` asserts the same counts on a smaller fleet.
"""

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.runtime import Runtime
from app.sandbox.faults import ErrorFault, RatePool
from app.storage import keys
from bench import procs
from bench.fleet import Fleet

FLEET = Fleet(100, 10)
MINUTES = 60
PROMOTED = 10  # services whose new commit is promoted through all 10 stages, per round
RESYNC_MINUTES = 15


async def idle_hour(runtime: Runtime) -> Counter[str]:
    """The Platform API calls of one simulated idle hour of the whole fleet."""
    names = [s.name for s in runtime.catalog.services]
    before = Counter(runtime.heroku.calls)
    for minute in range(MINUTES):
        if minute % RESYNC_MINUTES == 0:
            await runtime.redis.delete(*(keys.resynced(name) for name in names))
        runtime.scheduler.tick()
        await runtime.queue.join()
    await asyncio.sleep(0.5)  # a subscription check a resync asked for runs beside: counted too
    return Counter(runtime.heroku.calls) - before


SUBSCRIPTION_CALLS = "/webhooks"  # in the name of every subscription call, only theirs


def without_subscriptions(calls: Counter[str]) -> Counter[str]:
    """The calls a Cascade without CASCADE_PUBLIC_URL would have made: no subscription call."""
    return Counter({k: v for k, v in calls.items() if SUBSCRIPTION_CALLS not in k})


async def unannounced_release(runtime: Runtime, service: str, app: str) -> Counter[str]:
    """The calls one release no webhook brought costs: the resync of its service that finds
    it, and the check of that app's subscription it asks for (deleted here: made again)."""
    assert runtime.sandbox is not None
    world = runtime.sandbox.world.app(app)
    world.webhooks.clear()  # someone deleted them all: Cascade hears of the release by resync

    async def released() -> bool:
        return world.releases[-1].status != "pending"

    async def remade() -> bool:  # recorded after the app's check made its last call
        raw = await runtime.redis.hget(keys.SUBSCRIPTIONS, app)
        return raw is not None and any(h.id in str(raw) for h in world.webhooks)

    await runtime.sandbox.deploy(app)
    await _until(released, f"the release of {app} to finish")
    before = Counter(runtime.heroku.calls)
    await runtime.redis.delete(keys.resynced(service))
    runtime.scheduler.tick()
    await runtime.queue.join()
    await _until(remade, f"the subscription of {app} to be made again")
    return Counter(runtime.heroku.calls) - before


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited in vain for {what}")
        await asyncio.sleep(0.01)


async def _subscribed(runtime: Runtime, apps: int, timeout: float = 120) -> None:
    """Until the start-up subscription check has looked at every stage app."""
    deadline = time.monotonic() + timeout
    while runtime.heroku.calls["GET /apps/{app}/webhooks"] < apps:
        if time.monotonic() > deadline:
            raise TimeoutError("the start-up subscription check did not finish")
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    await runtime.queue.join()


async def settled(
    runtime: Runtime, services: list[str], apps: dict[str, str], timeout: float = 120
) -> None:
    """Until every app in `apps` runs its commit and no promotion of `services` is in flight."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await runtime.queue.join()
        views, unsettled = {}, 0
        for name in services:
            service = runtime.catalog.get(name)
            assert service is not None
            stages = await runtime.store.stages(name, service.stages or ())
            views.update({view.app: view.commit for view in stages})
            unsettled += len(await runtime.ledger.unsettled(name))
        if all(views.get(app) == commit for app, commit in apps.items()) and not unsettled:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the fleet did not settle")


async def cascade_through(
    runtime: Runtime, services: list[str], stages: int
) -> tuple[Counter[str], int]:
    """Deploy a new commit on the first stage of each service; calls until it ran everywhere."""
    assert runtime.sandbox is not None
    before = Counter(runtime.heroku.calls)
    wanted: dict[str, str] = {}
    for name in services:
        commit = secrets.token_hex(20)
        await runtime.sandbox.deploy(f"{name}-s0", commit)
        wanted.update({f"{name}-s{j}": commit for j in range(stages)})
    await settled(runtime, services, wanted)
    return Counter(runtime.heroku.calls) - before, len(services) * (stages - 1)


@dataclass
class Pacing:
    what: str
    seconds: float
    calls: int
    refused: int  # answers 429
    promoted: bool


@dataclass
class Economy:
    services: int = 0
    stages: int = 0
    cold: Counter[str] = field(default_factory=Counter)
    idle: Counter[str] = field(default_factory=Counter)
    idle_public: Counter[str] = field(default_factory=Counter)
    unannounced: Counter[str] = field(default_factory=Counter)  # one release no webhook brought
    promotion: Counter[str] = field(default_factory=Counter)
    promotions: int = 0
    pacing: list[Pacing] = field(default_factory=list)
    rounds: list[tuple[float, float]] = field(default_factory=list)  # (idle/service-h, /promotion)


def run(log: Callable[[str], None] = print) -> Economy:
    return procs.run_loop(_run(log))


async def _run(log: Callable[[str], None]) -> Economy:
    found = Economy(FLEET.services, FLEET.stages)
    with procs.scratch("economy") as tmp, procs.valkey(tmp) as redis:
        config = FLEET.write(tmp / "cascade.toml", min_age="0")
        public = {"public_url": "http://cascade.internal"}
        async with procs.in_process(redis.url, config, tmp, **public) as runtime:
            assert runtime.sandbox is not None
            await _subscribed(runtime, FLEET.services * FLEET.stages)
            found.cold = Counter(runtime.heroku.calls)
            log(f"  economy: cold start {sum(found.cold.values())} calls")
            # Counting needs no pool: an endless one keeps pacing out of the simulated hours
            # (the pacing cases below set the pool themselves).
            runtime.sandbox.rate = RatePool(size=1e12, tokens=1e12)
            runtime.sandbox._release_seconds = 0.05  # a quick release phase
            names = FLEET.names()
            for round_ in (1, 2):  # idle and promotions, twice
                idle_public = await idle_hour(runtime)
                idle = without_subscriptions(idle_public)
                found.idle += idle
                found.idle_public += idle_public
                calls, promotions = await cascade_through(runtime, names[:PROMOTED], FLEET.stages)
                found.promotion += calls
                found.promotions += promotions
                per_hour = sum(idle.values()) / FLEET.services
                per_promotion = sum(calls.values()) / promotions
                found.rounds.append((per_hour, per_promotion))
                log(
                    f"  economy round {round_}: {per_hour:.2f} calls/service-hour idle"
                    f" ({sum(idle_public.values()) / FLEET.services:.2f} with CASCADE_PUBLIC_URL),"
                    f" {per_promotion:.2f} calls/promotion"
                )
            found.unannounced = await unannounced_release(
                runtime, names[-1], f"{names[-1]}-s{FLEET.stages - 1}"
            )  # the last stage: nothing to promote from it
            log(f"  economy: one unannounced release {sum(found.unannounced.values())} calls")
            found.pacing = await _pacing(runtime, names[0])
            for p in found.pacing:
                log(f"  economy pacing: {p}")
    return found


async def _pacing(runtime: Runtime, name: str) -> list[Pacing]:
    """One service's commit through 10 stages: normal, 429s on each POST, a low pool, none."""
    sandbox = runtime.sandbox
    assert sandbox is not None
    found = []
    cases: list[tuple[str, Callable[[], None]]] = [
        ("normal: pool full", lambda: None),
        (
            "the first POST /pipeline-promotions answered 429 three times (retried)",
            lambda: _refuse_posts(sandbox, 3),
        ),
        (
            "the first POST answered 429 five times: deferred, sent on the next tick",
            lambda: _refuse_posts(sandbox, 5),
        ),
        (
            "RateLimit-Remaining 150 (< 200: Cascade paces at 0.8 s a call)",
            lambda: _pool(runtime, 150),
        ),
        ("pool empty: every call 429 until it refills (75 a minute)", lambda: _pool(runtime, 0)),
    ]
    for what, fault in cases:
        fault()
        refused_before = _refused(runtime)
        started = time.monotonic()
        before = Counter(runtime.heroku.calls)
        ticking = asyncio.create_task(_ticks(runtime))  # the fallback tick, every 5 s here
        try:
            await cascade_through(runtime, [name], FLEET.stages)
            promoted = True
        except TimeoutError:
            promoted = False
        finally:
            ticking.cancel()
        calls = Counter(runtime.heroku.calls) - before
        seconds = time.monotonic() - started
        found.append(
            Pacing(what, seconds, sum(calls.values()), _refused(runtime) - refused_before, promoted)
        )
        sandbox.faults.errors.clear()
        runtime.sandbox.rate = RatePool()
        runtime.heroku.rate_limit_remaining = None
    return found


def _refuse_posts(sandbox: Any, times: int) -> None:
    fault = ErrorFault(method="POST", path_prefix="/pipeline-promotions", status=429, count=times)
    sandbox.faults.errors.append(fault)


async def _ticks(runtime: Runtime, every: float = 5.0) -> None:
    while True:
        await asyncio.sleep(every)
        runtime.scheduler.tick()


def _pool(runtime: Runtime, tokens: int) -> None:
    assert runtime.sandbox is not None
    runtime.sandbox.rate.tokens, runtime.sandbox.rate.at = tokens, time.monotonic()


def _refused(runtime: Runtime) -> int:
    """Platform API answers 429 so far, from the client's own metrics."""
    return int(
        sum(
            sample.value
            for metric in runtime.metrics.heroku_calls.collect()
            for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels.get("status") == "429"
        )
    )


def per_hour(found: Economy) -> float:
    return sum(found.idle.values()) / len(found.rounds) / found.services


__all__ = ["Path", "cascade_through", "idle_hour", "run", "unannounced_release"]
