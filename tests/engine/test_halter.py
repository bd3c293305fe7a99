"""The auto-halt against the sandbox: a signal that starts soon after a promotion into a
stage pauses the service by "cascade", and the commit moves no further until retried."""

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from app.config.services import Service, ServicesConfig
from app.core.halt import Halt, Promoted, Signal
from app.core.models import PairState, PromotionState
from app.engine.reconcile import Reconciler
from app.engine.releases import Releases
from app.engine.rollback import Rollbacks
from app.engine.topologies import Topologies
from app.signals.alerts.facts import ALERTMANAGER, Alert
from app.signals.incidents.facts import Incident
from app.signals.incidents.view import SOURCE as STATUS
from app.storage import keys
from tests.factories import NOW, snapshot, stage
from tests.sandboxed import STAGES, World

A = "a" * 40
QA, ST, PROD = STAGES


def config(**fields: Any) -> ServicesConfig:
    """Staging takes a commit at once, production after a minute: the window to halt in."""
    service = Service(
        "api",
        "api",
        STAGES,
        min_age=timedelta(0),
        stage_min_age={PROD: timedelta(minutes=1)},
        halt_window=timedelta(seconds=30),
        **fields,
    )
    return ServicesConfig(Path("test.toml"), (service,))


async def step(world: World, seconds: float = 0) -> None:
    world.clock.now += timedelta(seconds=seconds)
    await world.settle()
    await asyncio.sleep(0.01)
    await world.reconciler.reconcile("api")


async def promote_to_staging(world: World) -> datetime:
    """A runs on staging; when its promotion was seen to succeed."""
    heard = str(world.clock.now.timestamp())
    await world.reconciler.store.redis.hset(
        keys.HEARD, mapping={ALERTMANAGER: heard, STATUS: heard}
    )
    await step(world)
    await world.sandbox.deploy(QA, A)
    await step(world, 1)  # A runs on qa
    await step(world, 1)  # promoted to staging
    await step(world, 1)  # seen there
    assert world.running(ST) == A
    (record,) = (await world.reconciler.ledger.find("api", [(ST, A)])).values()
    assert record.state is PromotionState.SUCCEEDED
    return record.updated_at


async def fire(world: World, name: str, since: datetime) -> None:
    alert = Alert(ALERTMANAGER, name, f"fp-{name}", {"alertname": name}, since)
    await world.reconciler.views.alerts.record([alert], [], world.clock.now)


async def events(world: World, kind: str) -> list[dict[str, Any]]:
    return [e for e in await world.reconciler.audit.read("api", 1000) if e["kind"] == kind]


async def test_an_alert_soon_after_a_promotion_halts_the_service(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(resync_seconds=0.001, config=config(alerts=("HighErrorRate",)))
    promoted_at = await promote_to_staging(world)
    await fire(world, "HighErrorRate", promoted_at + timedelta(seconds=5))
    await step(world, 5)
    pause = await world.reconciler.store.pause("api")
    assert pause is not None
    assert pause.by == "cascade"
    assert (
        pause.reason
        == f"auto-halt: alert HighErrorRate started firing 5s after {A[:7]} reached {ST}"
    )
    (halted,) = await events(world, "service.halted")
    assert (halted["commit"], halted["to"], halted["from"]) == (A, ST, None)
    assert halted["message"] == pause.reason
    assert halted["details"]["signal"] == "alert HighErrorRate"
    assert halted["details"]["promoted_at"] == promoted_at.isoformat()

    await world.reconciler.views.alerts.record(
        [], [Alert(ALERTMANAGER, "HighErrorRate", "fp-HighErrorRate")], world.clock.now
    )
    await world.reconciler.store.lift_pause("api")  # DELETE /pause: the halt is lifted
    await step(world, 120)
    assert world.running(PROD) != A  # suspect: it moves no further
    outcome = await world.reconciler.reconcile("api")
    assert outcome.plan is not None
    (held,) = outcome.plan.candidates
    assert held.state is PairState.BLOCKED
    assert "is suspect (auto-halt: alert HighErrorRate" in held.reason
    assert len(await events(world, "service.halted")) == 1  # once, however often it is seen

    await world.reconciler.store.clear_suspect("api", A)  # POST /retry
    await step(world, 1)
    await step(world, 1)
    assert world.running(PROD) == A


async def test_an_incident_soon_after_a_promotion_halts_the_service(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(resync_seconds=0.001, config=config(incident_systems=("Apps",)))
    opened = await promote_to_staging(world) + timedelta(seconds=5)
    incident = Incident("inc-1", "Apps down", "investigating", ("Apps",), created_at=opened)
    await world.reconciler.views.incidents.record_incident(incident, opened)
    await step(world, 5)
    pause = await world.reconciler.store.pause("api")
    assert pause is not None
    assert pause.by == "cascade"
    assert pause.reason == f"auto-halt: incident Apps down opened 5s after {A[:7]} reached {ST}"
    (halted,) = await events(world, "service.halted")
    assert halted["details"]["signal"] == "incident Apps down"
    await step(world, 120)
    assert world.running(PROD) != A


async def test_an_alert_firing_before_the_promotion_halts_nothing(make_world) -> None:  # type: ignore[no-untyped-def]
    # A staging alert: it holds promotions out of staging, not into it.
    world: World = await make_world(
        resync_seconds=0.001, config=config(stage_alerts={ST: ("StagingSlow",)})
    )
    await fire(world, "StagingSlow", world.clock.now - timedelta(seconds=60))
    await promote_to_staging(world)
    await step(world, 5)
    assert await world.reconciler.store.pause("api") is None
    assert await events(world, "service.halted") == []


async def test_a_stage_alert_of_another_stage_halts_nothing(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(
        resync_seconds=0.001, config=config(stage_alerts={PROD: ("ProdSlow",)})
    )
    promoted_at = await promote_to_staging(world)
    await fire(world, "ProdSlow", promoted_at + timedelta(seconds=5))
    await step(world, 5)
    assert await world.reconciler.store.pause("api") is None


async def test_a_promotion_into_the_last_stage_is_halted_too(make_world) -> None:  # type: ignore[no-untyped-def]
    """Every stage then runs the commit: the reconcile that finds it settled looks too."""
    world: World = await make_world(resync_seconds=0.001, config=config(alerts=("HighErrorRate",)))
    await promote_to_staging(world)
    await step(world, 61)  # production's minute: promoted there
    await step(world, 1)
    await step(world, 1)
    assert world.running(PROD) == A
    world.reconciler.releases.resync_seconds = (
        3600  # no resync due: the settled look, without the lock
    )
    await step(world, 1)
    await step(world, 1)
    (record,) = (await world.reconciler.ledger.find("api", [(PROD, A)])).values()
    await fire(world, "HighErrorRate", record.updated_at + timedelta(seconds=5))
    await step(world, 5)
    pause = await world.reconciler.store.pause("api")
    assert pause is not None
    assert pause.reason.endswith(f"after {A[:7]} reached {PROD}")


# rollback = true ---------------------------------------------------------------------


async def test_a_halt_rolls_the_stage_back_once(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(
        resync_seconds=0.001, config=config(alerts=("HighErrorRate",), rollback=True)
    )
    before = world.running(ST)
    previous = world.sandbox.world.app(ST).current
    assert previous is not None
    promoted_at = await promote_to_staging(world)
    await fire(world, "HighErrorRate", promoted_at + timedelta(seconds=5))
    await step(world, 5)
    await step(world, 1)
    await step(world, 1)
    assert world.running(ST) == before  # the release it ran before, again
    rollbacks = [r for r in world.sandbox.world.app(ST).releases if "Rollback" in r.description]
    assert len(rollbacks) == 1
    (started,) = await events(world, "rollback.started")
    (succeeded,) = await events(world, "rollback.succeeded")
    for event in (started, succeeded):
        assert (event["commit"], event["to"]) == (A, ST)
        assert event["details"] == {"release": previous.id, "to_commit": before}
    assert world.heroku.calls["POST /apps/{app}/releases"] == 1
    assert world.running(PROD) != A


async def test_no_rollback_once_the_stage_moved_on(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(resync_seconds=0.001, config=config(rollback=True))
    halt = Halt("api", Promoted(ST, A, NOW, NOW, over="whatever"), Signal("alert X", NOW))
    moved_on = snapshot((stage(QA, A), stage(ST, "b" * 40), stage(PROD, "o" * 40)))
    rollbacks = Rollbacks(world.heroku, world.reconciler.store, world.reconciler.audit, world.clock)
    await rollbacks(halt, moved_on)
    assert world.heroku.calls["POST /apps/{app}/releases"] == 0
    assert await world.reconciler.audit.read("api") == []


async def test_an_unknown_previous_release_is_reported_once_not_retried(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(resync_seconds=0.001, config=config(rollback=True))
    halt = Halt("api", Promoted(ST, A, NOW, NOW, over="expired-id"), Signal("alert X", NOW))
    running = snapshot((stage(QA, A), stage(ST, A), stage(PROD, "o" * 40)))
    rollbacks = Rollbacks(world.heroku, world.reconciler.store, world.reconciler.audit, world.clock)
    await world.reconciler.reconcile("api")  # the sandbox's apps exist
    await rollbacks(halt, running)
    await rollbacks(halt, running)  # another process, a repeated webhook
    (failed,) = await events(world, "rollback.failed")
    assert failed["message"] == (
        f"rollback of {ST} from {A[:7]} failed: Heroku no longer has that release"
    )
    assert failed["details"] == {"release": "expired-id", "to_commit": None}
    assert world.heroku.calls["POST /apps/{app}/releases"] == 0


async def test_a_dry_run_halts_but_rolls_nothing_back(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = await make_world(
        resync_seconds=0.001, config=config(alerts=("HighErrorRate",), rollback=True)
    )
    live, heroku = world.reconciler, world.heroku
    releases = Releases(heroku, live.store, live.clock, live.releases.resync_seconds)
    dry = Reconciler(
        config=live.config,
        heroku=heroku,
        store=live.store,
        ledger=live.ledger,
        locks=live.locks,
        audit=live.audit,
        promoter=live.promoter,
        clock=live.clock,
        views=live.views,
        topologies=Topologies(heroku, live.store, releases),
        releases=releases,
        dry_run=True,
        rollback=Rollbacks(heroku, live.store, live.audit, live.clock),
    )
    before = world.running(ST)
    promoted_at = await promote_to_staging(world)
    world.reconciler = dry
    await fire(world, "HighErrorRate", promoted_at + timedelta(seconds=5))
    await step(world, 5)
    await step(world, 1)
    assert await dry.store.pause("api") is not None
    assert world.running(ST) == A != before
    assert world.heroku.calls["POST /apps/{app}/releases"] == 0
