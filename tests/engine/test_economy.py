"""Platform API economy, counted: an idle fleet, a promotion, and the webhook path.

In-process Cascade on the in-process sandbox (a counting Platform API peer). The idle
hour is simulated: 60 fallback ticks, and every 15 minutes the resync marks expire as
Redis would expire them (CASCADE_RESYNC_SECONDS = 900); with CASCADE_PUBLIC_URL the
webhook subscriptions are checked at start-up only, as nothing suggests one is broken.
Counts, never times: the benchmark (`make bench`, BENCHMARKS.md) measures the same on 100
services.
"""

import json
from collections import Counter
from pathlib import Path
from typing import Any

from app.runtime import Runtime
from app.sandbox.bodies import release_hook_data
from app.storage import keys
from tests import signing
from tests.inprocess import WEBHOOK_SECRET, Cascade, Start, eventually

SERVICES, STAGES = 10, 10
IDLE_GOAL = 4  # calls per service-hour
PROMOTION_GOAL = 4  # calls per promotion


def fleet(path: Path) -> Path:
    lines = ['[defaults]\nmin_age = "0"\n']
    for i in range(SERVICES):
        stages = ", ".join(f'"svc{i}-s{j}"' for j in range(STAGES))
        lines.append(f'[[service]]\nname = "svc{i}"\npipeline = "svc{i}"\nstages = [{stages}]\n')
    path.write_text("\n".join(lines))
    return path


async def start(start_cascade: Start, tmp_path: Path, **settings: Any) -> Cascade:
    cascade = await start_cascade(config_path=fleet(tmp_path / "fleet.toml"), **settings)
    assert cascade.runtime.sandbox is not None
    cascade.runtime.sandbox._release_seconds = 0.05  # a quick release phase
    return cascade


def calls(runtime: Runtime) -> Counter[str]:
    return Counter(runtime.heroku.calls)


async def idle_hour(cascade: Cascade) -> Counter[str]:
    """The calls of one simulated idle hour: 60 ticks, the resync marks expiring 4 times."""
    runtime, before = cascade.runtime, calls(cascade.runtime)
    for minute in range(60):
        if minute % 15 == 0:  # CASCADE_RESYNC_SECONDS = 900: the resync marks expire
            await runtime.redis.delete(*(keys.resynced(f"svc{i}") for i in range(SERVICES)))
        runtime.scheduler.tick()
        await cascade.settle()
    return calls(runtime) - before


async def test_an_idle_fleet_makes_at_most_4_calls_per_service_hour(
    start_cascade: Start, tmp_path: Path
) -> None:
    made = await idle_hour(await start(start_cascade, tmp_path))
    assert sum(made.values()) / SERVICES <= IDLE_GOAL, made
    assert set(made) == {"GET /pipelines/{id}/latest-releases"}


async def test_with_a_public_url_an_idle_fleet_still_makes_at_most_4(
    start_cascade: Start, tmp_path: Path
) -> None:
    cascade = await start(start_cascade, tmp_path, public_url="https://cascade.example.com")

    async def subscribed() -> bool:  # recorded after each app's last call of the first check
        return await cascade.runtime.redis.hlen(keys.SUBSCRIPTIONS) == SERVICES * STAGES

    await eventually(subscribed, "the start-up subscription check", timeout=30)
    made = await idle_hour(cascade)
    assert sum(made.values()) / SERVICES <= IDLE_GOAL, made
    assert set(made) == {"GET /pipelines/{id}/latest-releases"}  # no subscription check


async def test_a_promotion_makes_at_most_4_calls(start_cascade: Start, tmp_path: Path) -> None:
    cascade = await start(start_cascade, tmp_path)
    runtime, sandbox = cascade.runtime, cascade.runtime.sandbox
    assert sandbox is not None
    before = calls(runtime)
    for i in range(SERVICES):  # a new commit on the second-to-last stage: one promotion each
        await sandbox.deploy(f"svc{i}-s{STAGES - 2}", f"{i:040x}")

    async def promoted() -> bool:
        await cascade.settle()
        last = [
            await cascade.stage_commit(f"svc{i}", f"svc{i}-s{STAGES - 1}") for i in range(SERVICES)
        ]
        unsettled = [await runtime.ledger.unsettled(f"svc{i}") for i in range(SERVICES)]
        return last == [f"{i:040x}" for i in range(SERVICES)] and not any(unsettled)

    await eventually(promoted, "every service's last stage to run its new commit", timeout=30)
    made = calls(runtime) - before
    assert made["POST /pipeline-promotions"] == SERVICES
    assert sum(made.values()) / SERVICES <= PROMOTION_GOAL, made


async def test_the_webhook_path_makes_no_call(start_cascade: Start, tmp_path: Path) -> None:
    cascade = await start(start_cascade, tmp_path)
    runtime, sandbox = cascade.runtime, cascade.runtime.sandbox
    assert sandbox is not None
    before = calls(runtime)
    for n in range(50):  # new releases of what each first stage runs (config-var changes)
        app = sandbox.world.app(f"svc{n % SERVICES}-s0")
        data = release_hook_data(app.releases[-1])
        data |= {"id": f"00000000-0000-4000-8000-{n:012d}", "version": 1000 + n}
        body = json.dumps(
            {
                "id": f"event-{n}",
                "action": "update",
                "resource": "release",
                "data": data,
                "webhook_metadata": {"delivery": {"id": f"delivery-{n}"}},
            }
        ).encode()
        headers = {"Heroku-Webhook-Hmac-SHA256": signing.heroku(body, WEBHOOK_SECRET)}
        answer = await cascade.client.post("/webhooks/heroku", content=body, headers=headers)
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "accepted"
    await cascade.settle()  # the reconciles the deliveries asked for, too
    assert calls(runtime) - before == Counter()
