import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as redis

from app import keys
from app.models import Pause, ReleaseStatus, StageView
from app.store import Store
from tests.factories import NOW, pause, release

APP = "api-qa"


@pytest.fixture
def store(redis_client: "redis.Redis") -> Store:
    return Store(redis_client)


async def test_put_release_folds_and_reports_a_change(store: Store) -> None:
    first = release(APP, 1, "A")
    assert await store.put_release("api", first) is True
    assert await store.put_release("api", first) is False
    assert await store.stages("api", [APP]) == (StageView(APP, first),)


async def test_put_release_folds_pending_then_succeeded(store: Store) -> None:
    await store.put_release("api", release(APP, 1, "A"))
    assert await store.put_release("api", release(APP, 2, "B", ReleaseStatus.PENDING)) is True
    assert await store.put_release("api", release(APP, 2, "B")) is True
    assert await store.stages("api", [APP]) == (StageView(APP, release(APP, 2, "B")),)


async def test_history_keeps_the_first_arrival(store: Store) -> None:
    arrived = NOW - timedelta(hours=2)
    await store.put_release("api", release(APP, 1, "A", created_at=arrived))
    config_change = release(APP, 2, "A", created_at=NOW - timedelta(minutes=1))
    assert await store.put_release("api", config_change) is True
    assert await store.history("api", [APP]) == {APP: {"A": arrived}}


async def test_history_uses_the_clamped_arrival(store: Store) -> None:
    late = release(APP, 1, "A", created_at=NOW - timedelta(days=1))
    await store.put_release("api", late, received_at=NOW)
    history = await store.history("api", [APP])
    assert history[APP]["A"] == NOW - timedelta(minutes=10)


async def test_pending_release_adds_no_history(store: Store) -> None:
    await store.put_release("api", release(APP, 1, "A", ReleaseStatus.PENDING))
    assert await store.history("api", [APP]) == {APP: {}}


async def test_history_is_capped_keeping_the_newest(store: Store) -> None:
    entries = {f"c{i}": NOW + timedelta(seconds=i) for i in range(keys.HISTORY_MAXLEN + 5)}
    await store.add_history("api", APP, entries)
    history = (await store.history("api", [APP]))[APP]
    assert len(history) == keys.HISTORY_MAXLEN
    assert "c0" not in history
    assert f"c{keys.HISTORY_MAXLEN + 4}" in history


async def test_add_history_marks_it_loaded(store: Store) -> None:
    assert await store.history_loaded("api", [APP, "api-st"]) == [False, False]
    await store.add_history("api", APP, {"A": NOW})
    assert await store.history_loaded("api", [APP, "api-st"]) == [True, False]


async def test_stages_of_unknown_apps_are_empty(store: Store) -> None:
    assert await store.stages("api", [APP, "api-st"]) == (StageView(APP), StageView("api-st"))
    assert await store.stages("api", []) == ()


async def test_pauses_set_get_lift(store: Store) -> None:
    everything, api = pause("freeze"), pause("db", svc="api")
    await store.set_pause(everything)
    await store.set_pause(api)
    assert await store.pause(None) == everything
    assert await store.pause("api") == api
    assert await store.pause("web") is None
    assert await store.lift_pause("api") == api
    assert await store.pause("api") is None
    assert await store.lift_pause("api") is None
    assert await store.pause(None) == everything


async def test_pause_with_until_expires_by_itself(store: Store) -> None:
    # Redis expires the key on its own clock, so this one test uses the real time.
    until = datetime.now(UTC) + timedelta(seconds=1.5)
    await store.set_pause(Pause("brief", created_at=NOW, until=until))
    assert await store.pause(None) is not None
    for _ in range(100):  # generous bound: up to ~10 s
        if await store.pause(None) is None:
            break
        await asyncio.sleep(0.1)
    assert await store.pause(None) is None


async def test_first_sighting_dedups(store: Store) -> None:
    assert await store.first_sighting("heroku", "d1") is True
    assert await store.first_sighting("heroku", "d1") is False
    assert await store.first_sighting("github", "d1") is True
    assert await store.first_sighting("heroku", "d2", "d1") is False


async def test_forget_sighting_allows_it_again(store: Store) -> None:
    await store.first_sighting("heroku", "d1")
    await store.forget_sighting("heroku", "d1")
    assert await store.first_sighting("heroku", "d1") is True


async def test_dedup_ids_expire(store: Store, redis_client: "redis.Redis") -> None:
    await store.first_sighting("heroku", "d1")
    assert 0 < await redis_client.ttl(keys.dedup("heroku", "d1")) <= keys.DEDUP_TTL.total_seconds()


async def test_slug_cache(store: Store) -> None:
    assert await store.get("slug-1") is None
    await store.put("slug-1", "A")
    assert await store.get("slug-1") == "A"


async def test_mark_resync_once(store: Store) -> None:
    assert await store.mark_resync("api", 900) is True
    assert await store.mark_resync("api", 900) is False
    assert await store.mark_resync("web", 900) is True


async def test_gate_states_roundtrip(store: Store) -> None:
    assert await store.gate_states("api") == {}
    await store.set_gate_states("api", {"api-st": "allow=open", "api-prod": "age=closed"}, ())
    assert await store.gate_states("api") == {"api-st": "allow=open", "api-prod": "age=closed"}
    await store.set_gate_states("api", {"api-st": "allow=closed"}, ["api-prod"])
    assert await store.gate_states("api") == {"api-st": "allow=closed"}


async def test_topology_roundtrip(store: Store) -> None:
    assert await store.topology("api") is None
    await store.set_topology("api", '{"stages": []}')
    assert await store.topology("api") == '{"stages": []}'
