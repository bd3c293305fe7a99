from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.core.models import Artifact, ArtifactKind, Pause, ReleaseStatus, StageView
from app.storage import keys
from app.storage.client import Client
from app.storage.store import Kept, Store
from tests.factories import NOW, pause, release

APP = "api-qa"


@pytest.fixture
def redis_client(server_or_cluster: Client) -> Client:
    """Every test here runs on one server and on a three-master Redis Cluster."""
    return server_or_cluster


@pytest.fixture
def store(redis_client: Client) -> Store:
    return Store(redis_client)


async def test_put_release_folds_and_reports_a_change(store: Store) -> None:
    first = release(APP, 1, "A")
    assert (await store.put_release("api", first, NOW)).changed is True
    assert (await store.put_release("api", first, NOW)).changed is False
    assert await store.stages("api", [APP]) == (StageView(APP, first),)


async def test_put_release_marks_the_sighting_with_the_fold(store: Store) -> None:
    first = release(APP, 1, "A")
    assert await store.put_release("api", first, NOW, sighting=("heroku", ["d1", "v1"])) == (
        True,
        True,
    )
    # A retry of the same delivery: nothing new, and seen.
    assert await store.put_release("api", first, NOW, sighting=("heroku", ["d1", "v1"])) == (
        False,
        False,
    )
    # Another delivery id for the same release is seen by its other mark.
    assert (
        await store.put_release("api", first, NOW, sighting=("heroku", ["d2", "v1"]))
    ).first is False
    assert (await store.put_release("api", first, NOW, sighting=("heroku", ["d3"]))).first is True


async def test_put_release_survives_redis_forgetting_its_scripts(
    store: Store, redis_client: Client
) -> None:
    await store.put_release("api", release(APP, 1, "A"), NOW)
    await redis_client.script_flush()  # as after a Redis restart
    assert (await store.put_release("api", release(APP, 2, "B"), NOW)).changed is True
    assert (await store.history("api", {APP: ["B"]})).arrived != {APP: {}}


async def test_put_release_folds_again_when_the_stage_changed_meanwhile(
    store: Store, redis_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    newer = release(APP, 2, "B")
    get = redis_client.get

    async def raced(key: str) -> Any:
        raw = await get(key)
        monkeypatch.setattr(redis_client, "get", get)
        await Store(redis_client).put_release("api", newer, NOW)  # lands between read and write
        return raw

    monkeypatch.setattr(redis_client, "get", raced)
    assert (await store.put_release("api", release(APP, 1, "A"), NOW)).changed is False
    assert await store.stages("api", [APP]) == (StageView(APP, newer),)


async def test_put_release_folds_pending_then_succeeded(store: Store) -> None:
    await store.put_release("api", release(APP, 1, "A"), NOW)
    assert (
        await store.put_release("api", release(APP, 2, "B", ReleaseStatus.PENDING), NOW)
    ).changed
    assert (await store.put_release("api", release(APP, 2, "B"), NOW)).changed
    assert await store.stages("api", [APP]) == (StageView(APP, release(APP, 2, "B")),)


async def test_history_keeps_the_first_arrival(store: Store) -> None:
    arrived = NOW - timedelta(hours=2)
    await store.put_release("api", release(APP, 1, "A"), arrived)
    config_change = release(APP, 2, "A", created_at=NOW - timedelta(minutes=1))
    assert (await store.put_release("api", config_change, NOW)).changed is True
    assert (await store.history("api", {APP: ["A"]})).arrived == {APP: {"A": arrived}}


@pytest.mark.parametrize("heroku_says", [NOW - timedelta(days=1), NOW + timedelta(days=1)])
async def test_a_commit_arrives_when_cascade_learns_it_runs(
    store: Store, heroku_says: datetime
) -> None:
    # Heroku's created_at is another clock, and when the release started: never an age.
    await store.put_release("api", release(APP, 1, "A", created_at=heroku_says), NOW)
    history = (await store.history("api", {APP: ["A"]})).arrived
    assert history[APP]["A"] == NOW


async def test_a_release_that_succeeds_behind_the_current_one_never_ran(store: Store) -> None:
    await store.put_release("api", release(APP, 10, "HOTFIX"), NOW)
    later = NOW + timedelta(minutes=2)
    await store.put_release("api", release(APP, 9, "A"), NOW + timedelta(minutes=1))
    history = await store.history("api", {APP: ["A"]})
    assert "A" not in history.arrived[APP]  # v10 was current: A's age has not started
    assert history.positions[APP]["A"] == 9  # yet its place in the order is known
    await store.put_release("api", release(APP, 11, "A"), later)
    assert (await store.history("api", {APP: ["A"]})).arrived[APP]["A"] == later


async def test_pending_release_adds_no_history(store: Store) -> None:
    await store.put_release("api", release(APP, 1, "A", ReleaseStatus.PENDING), NOW)
    assert await store.history("api", {APP: ["A"]}) == ({APP: {}}, {APP: {}}, {}, {})


async def test_history_is_capped_keeping_the_newest(store: Store) -> None:
    everything = [f"c{i}" for i in range(keys.HISTORY_MAXLEN + 5)]
    entries = {c: NOW + timedelta(seconds=i) for i, c in enumerate(everything)}
    places = {c: i + 1 for i, c in enumerate(everything)}
    ran = {c: release(APP, places[c], c) for c in everything}
    await store.add_history("api", APP, entries, places, ran=ran)
    history, positions, *_ = await store.history("api", {APP: everything})
    assert len(history[APP]) == len(positions[APP]) == keys.HISTORY_MAXLEN
    assert "c0" not in history[APP]
    assert "c0" not in positions[APP]  # trimmed from all three: a commit is in all or none
    assert await store.redis.hlen(keys.ran("api", APP)) == keys.HISTORY_MAXLEN
    assert not await store.redis.hexists(keys.ran("api", APP), "c0")
    assert f"c{keys.HISTORY_MAXLEN + 4}" in history[APP]


async def test_history_reads_the_wanted_commits_and_the_newest(store: Store) -> None:
    later, latest = NOW + timedelta(days=1), NOW + timedelta(days=2)
    await store.add_history(
        "api", APP, {"A": NOW, "B": later, "C": latest}, {"A": 1, "B": 2, "C": 3}
    )
    await store.add_history("api", "api-st", {"X": NOW}, {"X": 1})
    history = await store.history("api", {APP: ["A", "gone"], "api-st": [], "api-prod": ["Z"]})
    # An app with a history is never empty (the newest stands for it); one without is.
    assert history.arrived == {APP: {"A": NOW, "C": latest}, "api-prod": {}}
    assert history.positions == {APP: {"A": 1, "C": 3}, "api-prod": {}}


async def test_a_late_webhook_does_not_change_the_order_of_commits(store: Store) -> None:
    # B (v3) is heard at once; A (v2, the older release) half an hour late.
    await store.put_release("api", release(APP, 3, "B", created_at=NOW), NOW)
    late = release(APP, 2, "A", created_at=NOW - timedelta(minutes=1))
    await store.put_release("api", late, NOW + timedelta(minutes=30))
    history = await store.history("api", {APP: ["A", "B"]})
    assert "A" not in history.arrived[APP]  # no age: it no longer runs, as far as Cascade knows
    assert history.positions[APP] == {"A": 2, "B": 3}  # yet older in the app's releases


async def test_a_commit_keeps_its_lowest_position(store: Store) -> None:
    heard = NOW - timedelta(hours=1)
    await store.put_release("api", release(APP, 5, "A"), heard)
    await store.put_release("api", release(APP, 6, "B"), NOW)
    await store.put_release("api", replace(release(APP, 7, "A"), rollback_of=5), NOW)
    await store.put_release("api", release(APP, 8, "B"), NOW)  # a config-var release
    await store.add_history("api", APP, {"A": NOW, "B": NOW}, {"A": 2, "B": 9})
    history = await store.history("api", {APP: ["A", "B"]})
    assert history.positions[APP] == {"A": 2, "B": 6}
    assert history.arrived[APP]["A"] == heard  # the first arrival stays


async def test_a_rollback_places_its_commit_where_it_ran_before(store: Store) -> None:
    await store.put_release("api", release(APP, 60, "NEW"), NOW)
    await store.put_release("api", replace(release(APP, 61, "OLD"), rollback_of=3), NOW)
    history = await store.history("api", {APP: ["OLD", "NEW"]})
    assert history.positions[APP] == {"OLD": 3, "NEW": 60}
    assert (await store.stages("api", [APP]))[0].commit == "OLD"


async def test_add_history_marks_it_loaded(store: Store) -> None:
    assert await store.history_loaded("api", [APP, "api-st"]) == [False, False]
    await store.add_history("api", APP, {"A": NOW}, {"A": 1})
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


async def test_a_timed_pause_is_kept_past_until_by_redis_clock(store: Store) -> None:
    """`until` is decided by Cascade's clock (`Pause.active`): Redis, whose clock may run
    ahead, keeps the key a day longer as housekeeping and never ends the pause itself."""
    until = datetime.now(UTC) - timedelta(seconds=10)  # past for Redis, maybe not for Cascade
    await store.set_pause(Pause("brief", created_at=NOW, until=until))
    kept = await store.pause(None)
    assert kept is not None
    assert kept.until == until
    expires_ms = await store.redis.pexpiretime(keys.GLOBAL_PAUSE)
    assert expires_ms == int((until + keys.PAUSE_KEPT_AFTER).timestamp() * 1000)


async def test_first_sighting_dedups(store: Store) -> None:
    assert await store.first_sighting("heroku", "d1") is True
    assert await store.first_sighting("heroku", "d1") is False
    assert await store.first_sighting("github", "d1") is True
    assert await store.first_sighting("heroku", "d2", "d1") is False


async def test_forget_sighting_allows_it_again(store: Store) -> None:
    await store.first_sighting("heroku", "d1")
    await store.forget_sighting("heroku", "d1")
    assert await store.first_sighting("heroku", "d1") is True


async def test_dedup_ids_expire(store: Store, redis_client: Client) -> None:
    await store.first_sighting("heroku", "d1")
    assert 0 < await redis_client.ttl(keys.dedup("heroku", "d1")) <= keys.DEDUP_TTL.total_seconds()


async def test_slug_cache(store: Store) -> None:
    slug = Artifact(ArtifactKind.SLUG, "slug-1")
    assert await store.get(slug) is None
    await store.put(slug, "A")
    assert await store.get(slug) == "A"


async def test_a_fir_release_caches_its_oci_image_commit_apart_from_slugs(
    store: Store, redis_client: Client
) -> None:
    fir = replace(release(APP, 1, "A"), slug_id=None, oci_image_id="image-1")
    await store.put_release("api", fir, NOW)
    assert await redis_client.get(keys.artifact("oci-image", "image-1")) in ("A", b"A")
    assert await Store(redis_client).get(Artifact(ArtifactKind.OCI_IMAGE, "image-1")) == "A"
    assert await Store(redis_client).get(Artifact(ArtifactKind.SLUG, "image-1")) is None
    assert await store.stages("api", [APP]) == (StageView(APP, fir),)


async def test_a_stage_stored_before_fir_releases_still_loads(
    store: Store, redis_client: Client
) -> None:
    old = (
        '{"app":"api-qa","release":{"id":"r1","app":"api-qa","version":3,"status":"succeeded",'
        '"commit":"A","created_at":"2026-01-01T00:00:00Z","app_id":"i","slug_id":"s",'
        '"rollback_of":null},"pending":null}'
    )
    await redis_client.set(keys.stage("api", "api-qa"), old)
    (stage,) = await store.stages("api", ["api-qa"])
    assert stage.release is not None
    assert (stage.commit, stage.release.slug_id, stage.release.oci_image_id) == ("A", "s", None)


async def test_resync_soon_makes_a_resync_due_again(store: Store) -> None:
    await store.mark_resync("api", 900)
    await store.resync_soon("api")
    assert (await store.view("api", [APP])).resync_due is True
    assert await store.mark_resync("api", 900) is True


async def test_mark_resync_once(store: Store) -> None:
    assert await store.mark_resync("api", 900) is True
    assert await store.mark_resync("api", 900) is False
    assert await store.mark_resync("web", 900) is True


async def test_the_view_says_a_resync_is_due_until_a_process_takes_the_mark(store: Store) -> None:
    assert (await store.view("api", [APP])).resync_due is True
    assert (await store.view("api", [APP])).resync_due is True  # reading takes nothing
    await store.mark_resync("api", 900)
    assert (await store.view("api", [APP])).resync_due is False


async def test_gate_states_roundtrip(store: Store) -> None:
    assert (await store.view("api", [])).gate_states == {}
    await store.set_gate_states("api", {"api-st": "allow=open", "api-prod": "age=closed"}, ())
    states = (await store.view("api", [])).gate_states
    assert states == {"api-st": "allow=open", "api-prod": "age=closed"}
    await store.set_gate_states("api", {"api-st": "allow=closed"}, ["api-prod"])
    assert (await store.view("api", [])).gate_states == {"api-st": "allow=closed"}


async def test_view_reads_stages_and_both_pauses_at_once(store: Store) -> None:
    first = release(APP, 1, "A")
    await store.put_release("api", first, NOW)
    everything, api = pause("freeze"), pause("db", svc="api")
    await store.set_pause(everything)
    await store.set_pause(api)
    view = await store.view("api", [APP, "api-st"])
    assert view.stages == (StageView(APP, first), StageView("api-st"))
    assert (view.global_pause, view.service_pause) == (everything, api)
    assert (await store.view("web", [])).service_pause is None


async def test_topology_roundtrip(store: Store) -> None:
    assert await store.topology("api") is None
    await store.set_topology("api", '{"stages": []}')
    assert await store.topology("api") == '{"stages": []}'


async def test_put_release_folds_onto_a_stage_another_process_changed(
    store: Store, redis_client: Client
) -> None:
    await store.put_release("api", release(APP, 1, "A"), NOW)  # this process now knows v1
    await Store(redis_client).put_release("api", release(APP, 3, "C"), NOW)  # another process
    folded = await store.put_release("api", release(APP, 2, "B"), NOW)  # older than what is there
    assert folded.changed is False
    assert await store.stages("api", [APP]) == (StageView(APP, release(APP, 3, "C")),)


def test_what_a_process_keeps_is_bounded_and_the_oldest_go_first() -> None:
    kept = Kept[str, int](3)
    for i in range(5):
        assert kept.keep(f"k{i}", i) == i
    assert list(kept.items()) == [("k2", 2), ("k3", 3), ("k4", 4)]


async def test_a_looked_up_position_counts_where_the_history_has_none(store: Store) -> None:
    await store.add_history("api", APP, {"NEW": NOW}, {"NEW": 90})
    await store.add_looked_up("api", APP, {"OLD": 3, "HOTFIX": 0})
    history = await store.history("api", {APP: ["OLD", "HOTFIX", "NEW"]})
    assert history.positions[APP] == {"OLD": 3, "NEW": 90}  # 0: among none of its releases
    assert await store.looked_up("api", APP, ["OLD", "HOTFIX", "ELSE"]) == (
        {"OLD", "HOTFIX"},
        False,
    )


async def whole(store: Store) -> bool:
    return (await store.looked_up("api", APP, ["ANY"]))[1]


async def test_a_history_read_from_v1_is_whole_until_a_release_is_missed(store: Store) -> None:
    await store.put_release("api", release(APP, 2, "B"), NOW)
    await store.add_history("api", APP, {"A": NOW, "B": NOW}, {"A": 1, "B": 2}, from_v1=2)
    assert await whole(store)
    await store.put_release("api", release(APP, 3, "C"), NOW)  # the next version: none missed
    await store.put_release("api", release(APP, 4, "D", ReleaseStatus.PENDING), NOW)
    assert await whole(store)
    await store.put_release("api", release(APP, 5, "E"), NOW)  # v4 failed, unseen: a gap
    assert not await whole(store)


async def test_a_history_is_not_whole_when_the_read_does_not_reach_v1(store: Store) -> None:
    await store.add_history("api", APP, {"A": NOW}, {"A": 40})
    assert not await whole(store)


async def test_a_history_is_not_whole_when_the_stage_moved_on_during_the_read(
    store: Store,
) -> None:
    await store.put_release("api", release(APP, 4, "D"), NOW)  # v3 may hold a commit unread
    await store.add_history("api", APP, {"A": NOW}, {"A": 1}, from_v1=2)
    assert not await whole(store)


async def test_a_trimmed_history_is_not_whole(store: Store) -> None:
    everything = [f"c{i}" for i in range(keys.HISTORY_MAXLEN + 1)]
    places = {c: i + 1 for i, c in enumerate(everything)}
    await store.add_history("api", APP, dict.fromkeys(everything, NOW), places, from_v1=len(places))
    assert not await whole(store)  # c0 was dropped: deployed again, it would look newest


async def test_a_halt_is_applied_once_with_its_pause_and_suspect_mark(store: Store) -> None:
    halt = Pause(reason="auto-halt: alert X", created_at=NOW, by="cascade", service="api")
    assert await store.halt("api-st", "abc", halt)
    await store.lift_pause("api")  # the operator lifts the halt
    again = Pause(reason="auto-halt: repeated", created_at=NOW, by="cascade", service="api")
    assert not await store.halt("api-st", "abc", again)  # a repeated webhook, another process
    view = await store.view("api", ["api-qa"])
    assert view.service_pause is None
    assert view.suspects == {"abc": "auto-halt: alert X"}
    assert await store.clear_suspect("api", "abc")
    assert not await store.clear_suspect("api", "abc")
    assert (await store.view("api", ["api-qa"])).suspects == {}


async def test_a_halt_pauses_the_service(store: Store) -> None:
    halt = Pause(reason="auto-halt: alert X", created_at=NOW, by="cascade", service="api")
    assert await store.halt("api-st", "abc", halt)
    assert await store.pause("api") == halt
    assert await store.halt("api-prod", "abc", halt)  # another stage: another halt
