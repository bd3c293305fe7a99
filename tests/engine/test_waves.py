"""Waves: an entry of `stages` that is a list of apps, promoted together with one POST."""

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest

from app.api.status import render
from app.config.services import ConfigError, Service, ServicesConfig, load_services
from app.core.models import PairState, Snapshot
from app.core.plan import plan
from tests.factories import NOW, snapshot, stage
from tests.sandboxed import World

WAVES = (("w-qa",), ("w-st",), ("w-us", "w-eu"), ("w-jp",))
STAGES = tuple(app for wave in WAVES for app in wave)
SERVICE = Service("w", "w", STAGES, min_age=timedelta(minutes=30), waves=WAVES)
A = "a" * 40


def test_a_list_in_stages_is_a_wave(tmp_path: Path) -> None:
    path = tmp_path / "cascade.toml"
    path.write_text(
        '[[service]]\nname = "w"\npipeline = "w"\n'
        'stages = ["w-qa", "w-st", ["w-us", "w-eu"], "w-jp"]\n'
        '[service.stage_min_age]\n"w-eu" = "1h"\n'
    )
    (service,) = load_services(path).services
    assert service.stages == STAGES
    assert service.waves == WAVES
    path.write_text(
        '[[service]]\nname = "w"\npipeline = "w"\nstages = ["w-qa", ["w-st", "w-qa"]]\n'
    )
    with pytest.raises(ConfigError, match="distinct"):
        load_services(path)


def waves_snapshot(st: str, us: str, eu: str, jp: str = "O") -> Snapshot:
    stages = (stage("w-qa", st), stage("w-st", st), stage("w-us", us), stage("w-eu", eu))
    history = {app: {c: NOW - timedelta(hours=2) for c in "AOB"} for app in STAGES}
    positions = {app: {"O": 1, "A": 2, "B": 3} for app in STAGES}
    return snapshot((*stages, stage("w-jp", jp)), history, positions=positions, service=SERVICE)


def test_every_app_of_a_wave_is_a_target_of_the_stage_before() -> None:
    decided = plan(waves_snapshot(st="A", us="O", eu="O"))
    ready = {c.pair.target.app: (c.pair.source.app, c.state) for c in decided.candidates}
    assert ready == {"w-us": ("w-st", PairState.READY), "w-eu": ("w-st", PairState.READY)}


def test_the_next_stage_moves_only_once_every_app_of_the_wave_runs_the_commit() -> None:
    decided = plan(waves_snapshot(st="A", us="A", eu="O"))
    (into_jp,) = [c for c in decided.candidates if c.pair.target.app == "w-jp"]
    assert into_jp.state is PairState.WAITING
    assert "w-eu of the wave w-us + w-eu do not run" in into_jp.reason
    decided = plan(waves_snapshot(st="A", us="A", eu="A"))
    (into_jp,) = decided.candidates
    assert (into_jp.pair.source.app, into_jp.state) == ("w-us", PairState.READY)


def test_status_lists_every_app_with_its_wave() -> None:
    s = waves_snapshot(st="A", us="O", eu="O")
    shown = render(s, plan(s))
    assert [(x.app, x.wave) for x in shown.stages] == [
        ("w-qa", 0),
        ("w-st", 1),
        ("w-us", 2),
        ("w-eu", 2),
        ("w-jp", 3),
    ]


async def wave_world(make_world: object) -> World:
    config = ServicesConfig(Path("waves.toml"), services=(SERVICE,))
    world: World = await make_world(resync_seconds=0.001, config=config)  # type: ignore[operator]
    await world.reconciler.reconcile("w")
    return world


async def moved(world: World, minutes: int = 31) -> None:
    """Time passes, the sandbox finishes its work, Cascade looks."""
    world.clock.now += timedelta(minutes=minutes)
    await world.settle()
    await asyncio.sleep(0.01)
    await world.reconciler.reconcile("w")


async def to_the_wave(world: World) -> None:
    """A on w-qa, then w-st, old enough to move on into the wave."""
    await world.sandbox.deploy("w-qa", A)
    await moved(world)  # A seen running on w-qa
    await moved(world)  # promoted to w-st
    await moved(world)  # seen running on w-st
    assert world.running("w-st") == A


async def test_a_wave_is_promoted_with_one_post(make_world) -> None:  # type: ignore[no-untyped-def]
    world = await wave_world(make_world)
    await to_the_wave(world)
    await moved(world)  # into the wave
    (post,) = [p for p in world.sandbox.world.promotions if p.source.app.name == "w-st"]
    assert sorted(t.app.name for t in post.targets) == ["w-eu", "w-us"]
    await moved(world)
    assert (world.running("w-us"), world.running("w-eu")) == (A, A)
    await moved(world)  # the wave has run A long enough: on to w-jp
    await moved(world)
    assert world.running("w-jp") == A
    records = await world.reconciler.ledger.find("w", [("w-us", A), ("w-eu", A), ("w-jp", A)])
    assert {r.target: r.state.value for r in records.values()} == {
        "w-us": "succeeded",
        "w-eu": "succeeded",
        "w-jp": "succeeded",
    }


async def test_one_target_failing_leaves_the_other_succeeded_and_holds_the_next(  # type: ignore[no-untyped-def]
    make_world,
) -> None:
    world = await wave_world(make_world)
    await to_the_wave(world)
    world.sandbox.faults.fail_targets = ["w-eu"]
    await moved(world)  # into the wave: one POST, w-eu's target fails
    await moved(world)
    await moved(world)
    assert world.running("w-us") == A
    assert world.running("w-eu") != A
    records = await world.reconciler.ledger.find("w", [("w-us", A), ("w-eu", A)])
    states = {r.target: r.state.value for r in records.values()}
    assert states == {"w-us": "succeeded", "w-eu": "failed"}
    service = world.reconciler.config.services[0]
    snap = await world.observe(service)
    shown = {c.pair.target.app: c for c in plan(snap).candidates}
    assert shown["w-eu"].state is PairState.FAILED
    assert "w-eu failed" in shown["w-eu"].reason
    assert shown["w-jp"].state is PairState.WAITING  # the wave does not run one commit
    assert world.running("w-jp") != A
