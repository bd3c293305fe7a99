"""`AlertsView` against a real Redis, Librato's API faked by respx (unmatched calls fail)."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx

from app.config.settings import Settings
from app.signals.alerts.client import LibratoClient
from app.signals.alerts.facts import ALERTMANAGER, LIBRATO, Alert, AlertsFacts
from app.signals.alerts.problems import NO_ALERTMANAGER, NO_SOURCE
from app.signals.alerts.view import AlertsView
from app.storage import keys
from app.storage.client import Client
from app.storage.store import Store
from tests.conftest import FIXTURES
from tests.factories import NOW, service

API = "http://librato.test"
RETRY = timedelta(seconds=10)
SILENCE = timedelta(hours=24)  # CASCADE_SILENT_SOURCE_MAX_AGE's default
API_SVC = service("api", alerts=("api 5xx rate", "APIHighLatency"))
WEB_SVC = service("web", alerts=('APIHighLatency{job="web"}',))
BY_ID = service("ids", alerts=("106",))
STATUS = json.loads((FIXTURES / "librato" / "librato-api-alerts-status-response.json").read_text())


def latency(job: str, fingerprint: str, since: datetime = NOW) -> Alert:
    labels = {"alertname": "APIHighLatency", "job": job}
    return Alert(ALERTMANAGER, "APIHighLatency", fingerprint, labels, since)


RATE = Alert(LIBRATO, "api 5xx rate", "106", since=NOW, url="http://runbook")


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def redis_client(server_or_cluster: Client) -> Client:
    """Every test here runs on one server and on a three-master Redis Cluster."""
    return server_or_cluster


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def view(redis_client: Client, clock: Clock) -> AlertsView:
    return AlertsView(redis_client, None, RETRY, clock)


@pytest.fixture
async def with_librato(redis_client: Client, clock: Clock) -> AsyncIterator[AlertsView]:
    librato = LibratoClient(API, "ops", "token")
    yield AlertsView(redis_client, librato, RETRY, clock)
    await librato.aclose()


async def heard(client: Client, source: str = ALERTMANAGER, at: datetime = NOW) -> None:
    await Store(client).heard(source, at)


# the webhook view, without Librato's API -------------------------------------------------


async def test_a_service_without_alerts_gathers_none(view: AlertsView) -> None:
    assert await view.gather(service("plain"), NOW) is None


async def test_unknown_until_some_sender_reports(view: AlertsView, redis_client: Client) -> None:
    assert await view.gather(API_SVC, NOW) == AlertsFacts((), NO_SOURCE, NOW + RETRY)
    await heard(redis_client, LIBRATO)
    assert await view.gather(API_SVC, NOW) == AlertsFacts(())


async def test_entries_with_labels_wait_for_alertmanager(
    view: AlertsView, redis_client: Client
) -> None:
    await heard(redis_client, LIBRATO)
    assert await view.gather(WEB_SVC, NOW) == AlertsFacts((), NO_ALERTMANAGER, NOW + RETRY)
    await heard(redis_client, ALERTMANAGER)
    assert await view.gather(WEB_SVC, NOW) == AlertsFacts(())


async def test_record_keeps_firing_and_forgets_cleared(
    view: AlertsView, redis_client: Client
) -> None:
    await heard(redis_client)
    api, web = latency("api", "f-api"), latency("web", "f-web")
    recorded = await view.record([api, web, RATE], [], NOW)
    assert (recorded.fired, recorded.cleared, recorded.changed) == ((api, web, RATE), (), True)
    assert (await view.gather(API_SVC, NOW)) == AlertsFacts((api, web, RATE))
    assert (await view.gather(WEB_SVC, NOW)) == AlertsFacts((web,))

    again = await view.record([api], [], NOW)  # a repeat: nothing new
    assert (again.fired, again.changed) == ((), False)

    cleared = await view.record([], [web, latency("web", "never-seen")], NOW)
    assert cleared.cleared == (web,)
    assert (await view.gather(WEB_SVC, NOW)) == AlertsFacts(())
    assert (await view.gather(API_SVC, NOW)).firing == (api, RATE)  # type: ignore[union-attr]


def ended(alert: Alert, until: datetime) -> Alert:
    """`alert` as a resolved notification carries it: its episode's start and end."""
    return replace(alert, until=until)


async def test_a_late_resolve_of_an_earlier_episode_keeps_the_alert_firing(
    view: AlertsView, redis_client: Client
) -> None:
    """Alertmanager HA pairs and retries: episode 1's "resolved" arrives after episode 2 fired."""
    await heard(redis_client)
    first = latency("api", "f-api", NOW)
    second = latency("api", "f-api", NOW + timedelta(minutes=20))
    await view.record([first], [], NOW)
    await view.record([], [ended(first, NOW + timedelta(minutes=10))], NOW)
    assert (await view.record([second], [], NOW)).fired == (second,)
    resolve = ended(first, NOW + timedelta(minutes=10))
    late = await view.record([], [resolve], NOW)
    assert (late.cleared, late.outdated, late.changed) == ((), (resolve,), False)
    assert (await view.gather(API_SVC, NOW)) == AlertsFacts((second,))


async def test_a_late_firing_of_a_resolved_episode_stays_resolved(
    view: AlertsView, redis_client: Client, clock: Clock
) -> None:
    await heard(redis_client)
    first = latency("api", "f-api", NOW)
    await view.record([first], [], NOW)
    await view.record([], [ended(first, NOW + timedelta(minutes=10))], NOW)
    late = await view.record([first], [], NOW)  # the other HA peer, or a retry
    assert (late.fired, late.outdated) == ((), (first,))
    assert (await view.gather(API_SVC, NOW)) == AlertsFacts(())
    again = latency("api", "f-api", NOW + timedelta(minutes=11))  # a new episode fires
    assert (await view.record([again], [], NOW)).fired == (again,)
    assert await redis_client.hkeys(keys.ALERTS_ENDED) == [first.key]
    clock.now = NOW + keys.ALERTMANAGER_TTL + timedelta(seconds=1)
    await view.refresh([API_SVC])  # the ended marks last as long as an alert kept
    assert await redis_client.hkeys(keys.ALERTS_ENDED) == []


async def test_a_late_librato_clear_keeps_a_newer_trigger(
    view: AlertsView, redis_client: Client
) -> None:
    """Librato's clear carries its trigger_time: one older than the firing alert's is late."""
    await heard(redis_client, LIBRATO)
    old = replace(RATE, since=NOW - timedelta(hours=1))
    await view.record([RATE], [], NOW)
    late = await view.record([], [old], NOW)
    assert late.cleared == ()
    assert (await view.gather(API_SVC, NOW)) == AlertsFacts((RATE,))
    assert (await view.record([], [RATE], NOW)).cleared == (RATE,)  # its own clear clears


async def test_a_resolve_ending_before_it_starts_is_read_as_its_start(
    view: AlertsView, redis_client: Client
) -> None:
    await heard(redis_client)
    api = latency("api", "f-api", NOW)
    await view.record([api], [], NOW)
    odd = ended(api, NOW - timedelta(days=800))
    assert [a.key for a in (await view.record([], [odd], NOW)).cleared] == [api.key]


async def test_a_clear_without_times_clears_by_arrival(
    view: AlertsView, redis_client: Client
) -> None:
    await heard(redis_client)
    api = latency("api", "f-api")
    await view.record([api], [], NOW)
    cleared = await view.record([], [replace(api, since=None)], NOW)
    assert [a.key for a in cleared.cleared] == [api.key]


async def test_an_alertmanager_alert_expires_unless_repeated(
    view: AlertsView, redis_client: Client, clock: Clock
) -> None:
    await heard(redis_client)
    api, web = latency("api", "f-api"), latency("web", "f-web")
    await view.record([api, web], [], NOW)
    later = NOW + keys.ALERTMANAGER_TTL - timedelta(hours=1)
    await view.record([api], [], later)  # Alertmanager's repeat_interval
    await heard(redis_client, at=later)
    clock.now = NOW + keys.ALERTMANAGER_TTL + timedelta(seconds=1)
    assert (await view.gather(WEB_SVC, clock.now)) == AlertsFacts(())
    assert (await view.gather(API_SVC, clock.now)).firing == (api,)  # type: ignore[union-attr]
    assert await view.refresh([API_SVC, WEB_SVC, service("plain")]) == ["api", "web"]
    assert await redis_client.hkeys(keys.ALERTS_FIRING) == [api.key]  # the expired one is gone


async def test_a_full_view_refuses_new_alerts_and_knows_nothing(
    view: AlertsView, redis_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "ALERTS_MAX", 2)
    await heard(redis_client)
    first, second, third = (latency("api", f"f{i}") for i in range(3))
    recorded = await view.record([first, second, third], [], NOW)
    assert (recorded.fired, recorded.refused) == ((first, second), (third,))
    assert "refused (the view is full)" in recorded.summary()
    facts = await view.gather(API_SVC, NOW)
    assert facts is not None
    assert facts.firing == (first, second)
    assert facts.problem is not None
    assert "more than 2 alerts are firing" in facts.problem
    assert (await view.record([first], [], NOW)).refused == ()  # a repeat still fits
    assert len(await redis_client.hkeys(keys.ALERTS_FIRING)) == 2


# freshness: a silent source, a heartbeat, a truncated notification -----------------------


async def test_a_silent_alertmanager_is_unknown_after_the_allowed_silence(
    view: AlertsView, redis_client: Client
) -> None:
    """Without a heartbeat, "nothing fires" ages: past the allowed silence it is not known."""
    await heard(redis_client)
    assert (await view.gather(API_SVC, NOW + timedelta(hours=23))) == AlertsFacts(())
    later = NOW + SILENCE + timedelta(seconds=1)
    facts = await view.gather(API_SVC, later)
    assert facts is not None
    assert facts.problem == (
        "alertmanager was last heard 1d1s ago, longer than CASCADE_SILENT_SOURCE_MAX_AGE (1d)"
        " allows: set CASCADE_ALERTMANAGER_HEARTBEAT to an always-firing alert (Watchdog),"
        " or check its route to Cascade"
    )
    assert facts.recheck_at == later + RETRY


async def test_with_a_heartbeat_alertmanager_is_known_only_while_it_beats(
    redis_client: Client, clock: Clock
) -> None:
    view = AlertsView(redis_client, None, RETRY, clock, heartbeat="Watchdog")
    await heard(redis_client)
    facts = await view.gather(API_SVC, NOW)
    assert facts is not None
    assert facts.problem == (
        'Alertmanager\'s heartbeat "Watchdog" has not been heard: route it to Cascade'
        " (repeat_interval under 5m)"
    )
    watchdog = Alert(ALERTMANAGER, "Watchdog", "f-watchdog", {"alertname": "Watchdog"}, NOW)
    await view.record([watchdog], [], NOW)
    assert (await view.gather(API_SVC, NOW + timedelta(minutes=4))) == AlertsFacts(())
    stopped = await view.gather(API_SVC, NOW + timedelta(minutes=6))
    assert stopped is not None
    assert stopped.problem == (
        'Alertmanager\'s heartbeat "Watchdog" was last heard 6m ago (it must be under'
        " 5m old): its notifications are not reaching Cascade"
    )
    await view.record([watchdog], [], NOW + timedelta(minutes=6))  # the next repeat
    assert (await view.gather(API_SVC, NOW + timedelta(minutes=7))) == AlertsFacts(())
    # a heartbeat beating proves Alertmanager alive however long nothing else fired
    await view.record([watchdog], [], NOW + SILENCE * 2)
    assert (await view.gather(API_SVC, NOW + SILENCE * 2)) == AlertsFacts(())


async def test_a_truncated_notification_is_unknown_for_the_alerts_it_may_hide(
    view: AlertsView, redis_client: Client
) -> None:
    await heard(redis_client)
    group = {"alertname": "APIHighLatency"}
    await view.record_truncated('{}:{alertname="APIHighLatency"}', group, 3, NOW)
    facts = await view.gather(API_SVC, NOW)
    assert facts is not None
    assert facts.problem == (
        "Alertmanager left 3 alerts of the group alertname=APIHighLatency out of a notification"
        " (max_alerts), and this service's may be among them: set max_alerts: 0 for Cascade"
    )
    other = service("other", alerts=("DiskFull", 'APIHighLatency{job="x"}'))
    assert (await view.gather(service("disk", alerts=("DiskFull",)), NOW)) == AlertsFacts(())
    assert (await view.gather(other, NOW)).problem is not None  # type: ignore[union-attr]
    await view.record_truncated('{}:{alertname="APIHighLatency"}', group, 0, NOW)
    assert (await view.gather(API_SVC, NOW)) == AlertsFacts(())


async def test_freshness_says_when_each_alert_source_was_last_heard(
    redis_client: Client, clock: Clock
) -> None:
    view = AlertsView(redis_client, None, RETRY, clock, heartbeat="Watchdog")
    (never,) = await view.freshness(NOW)  # expected, never heard
    assert never.describe(NOW) == (
        "alerts: never heard from alertmanager (heartbeat Watchdog): stale, over 5m: unknown"
    )
    await heard(redis_client, at=NOW)
    watchdog = Alert(ALERTMANAGER, "Watchdog", "f-watchdog", {"alertname": "Watchdog"}, NOW)
    await view.record([watchdog], [], NOW)
    later = NOW + timedelta(minutes=3)
    (fresh,) = await view.freshness(later)
    assert fresh.describe(later) == (
        "alerts: last heard 3m ago from alertmanager (heartbeat Watchdog)"
    )
    much_later = NOW + timedelta(minutes=7)
    (stale,) = await view.freshness(much_later)
    assert stale.stale
    assert stale.describe(much_later) == (
        "alerts: last heard 7m ago from alertmanager (heartbeat Watchdog): stale, over 5m: unknown"
    )

    plain = AlertsView(redis_client, None, RETRY, clock)
    await heard(redis_client, LIBRATO, NOW)
    lines = [f.describe(much_later) for f in await plain.freshness(much_later)]
    assert lines == [
        "alerts: last heard 7m ago from alertmanager (webhook)",
        "alerts: last heard 7m ago from librato (webhook)",
    ]


def test_a_polled_feed_is_stale_after_three_missed_polls(redis_client: Client) -> None:
    settings = Settings(librato_user="ops", librato_token="t", poll_seconds=120)
    view = AlertsView.from_settings(settings, redis_client)
    assert view.expected.stale_after == timedelta(minutes=6)
    assert view.expected.silence_max == timedelta(hours=24)


async def test_without_librato_refresh_calls_nobody(view: AlertsView) -> None:
    with respx.mock:  # any HTTP call fails
        assert await view.refresh([API_SVC]) == []


# Librato's alert status API --------------------------------------------------------------


def librato_mock() -> respx.MockRouter:
    """Librato's API: a request no route matches fails; routes need not all be called."""
    return respx.mock(base_url=API, assert_all_called=False)


def librato_api(mock: respx.MockRouter, firing: object = STATUS) -> respx.Route:
    mock.get("/v1/alerts/106", name="alert-106").respond(json={"id": 106, "name": "api 5xx rate"})
    mock.get("/v1/alerts/129", name="alert-129").respond(json={"id": 129, "name": "other"})
    return mock.get("/v1/alerts/status").respond(json=firing)


async def test_a_poll_names_the_firing_alerts(with_librato: AlertsView) -> None:
    with librato_mock() as mock:
        librato_api(mock)
        assert await with_librato.refresh([API_SVC, WEB_SVC, BY_ID]) == ["api", "ids"]
    facts = await with_librato.gather(API_SVC, NOW, fetch=False)
    assert facts is not None
    assert facts.problem is None
    since = datetime.fromtimestamp(1413328283, UTC)
    assert facts.firing == (Alert(LIBRATO, "api 5xx rate", "106", since=since),)
    assert (await with_librato.gather(BY_ID, NOW, fetch=False)).firing == facts.firing  # type: ignore[union-attr]

    with librato_mock() as mock:  # nothing changed: nothing to reconcile
        status = librato_api(mock)
        assert await with_librato.refresh([API_SVC, WEB_SVC, BY_ID]) == []
        assert status.called
        assert not mock["alert-106"].called  # its name is known already

    with librato_mock() as mock:  # it cleared
        librato_api(mock, {"firing": [{"id": 129, "triggered_at": 1444934147}], "cleared": []})
        assert await with_librato.refresh([API_SVC, WEB_SVC, BY_ID]) == ["api", "ids"]
    assert await with_librato.gather(API_SVC, NOW) == AlertsFacts(())


async def test_unreachable_librato_is_unknown_then_recovers_by_itself(
    with_librato: AlertsView, redis_client: Client, clock: Clock
) -> None:
    await heard(redis_client)  # the webhook view alone does not do while Librato is configured
    with librato_mock() as mock:
        status = mock.get("/v1/alerts/status").mock(side_effect=httpx.ConnectError("refused"))
        facts = await with_librato.gather(API_SVC, NOW)
        assert facts is not None
        assert facts.firing == ()
        assert facts.recheck_at == NOW + RETRY
        assert facts.problem is not None
        assert facts.problem.startswith("Librato's alert status has not been read yet: ")
        assert "ConnectError: refused" in facts.problem
        await with_librato.gather(API_SVC, NOW)  # within the retry interval: no second call
        assert status.call_count == 1
        assert await with_librato.refresh([API_SVC]) == []  # the poller's try fails too
        assert status.call_count == 2

    clock.now = NOW + timedelta(minutes=1)
    with librato_mock() as mock:
        librato_api(mock, {"firing": [], "cleared": []})
        assert await with_librato.refresh([API_SVC, WEB_SVC]) == ["api"]  # it may open now
    assert await with_librato.gather(API_SVC, clock.now, fetch=False) == AlertsFacts(())


async def test_a_reconcile_polls_a_stale_feed_once_per_retry(
    with_librato: AlertsView, redis_client: Client
) -> None:
    with librato_mock() as mock:
        librato_api(mock, {"firing": [], "cleared": []})
        assert await with_librato.gather(API_SVC, NOW) == AlertsFacts(())
    await redis_client.delete(keys.LIBRATO_TRIED)  # the retry interval passed

    later = NOW + timedelta(minutes=6)
    with librato_mock() as mock:  # stale, and the feed fails now
        mock.get("/v1/alerts/status").respond(503, text="down for maintenance")
        facts = await with_librato.gather(API_SVC, later)
    assert facts is not None
    assert facts.recheck_at == later + RETRY
    assert facts.problem == (
        "Librato's alert status was last read 6m ago: Librato GET"
        f" {API}/v1/alerts/status: 503 down for maintenance (it must be under 3m old)"
    )

    await redis_client.delete(keys.LIBRATO_TRIED)
    with librato_mock() as mock:  # back
        librato_api(mock)
        facts = await with_librato.gather(API_SVC, later)
    assert facts is not None
    assert facts.problem is None
    assert [a.id for a in facts.firing] == ["106"]


async def test_reconciles_at_once_share_one_poll(with_librato: AlertsView) -> None:
    with librato_mock() as mock:
        status = librato_api(mock, {"firing": [], "cleared": []})
        view = await asyncio.gather(
            with_librato.gather(API_SVC, NOW), with_librato.gather(BY_ID, NOW)
        )
    assert list(view) == [AlertsFacts(()), AlertsFacts(())]
    assert status.call_count == 1


async def test_fetch_false_makes_no_http_call(
    with_librato: AlertsView, redis_client: Client
) -> None:
    with librato_mock() as mock:
        status = librato_api(mock)
        facts = await with_librato.gather(API_SVC, NOW, fetch=False)
        assert not status.called
    assert facts is not None
    assert facts.problem is not None
    assert facts.problem.startswith("Librato's alert status has not been read yet")
    assert await redis_client.get(keys.LIBRATO_TRIED) is None


async def test_a_feed_of_entries_with_labels_only_is_not_needed(
    with_librato: AlertsView, redis_client: Client
) -> None:
    await heard(redis_client)
    with librato_mock():  # any HTTP call fails
        assert await with_librato.gather(WEB_SVC, NOW) == AlertsFacts(())
        assert await with_librato.refresh([WEB_SVC]) == []


async def test_a_poll_settles_a_webhook_alert_it_does_not_list(
    with_librato: AlertsView, clock: Clock
) -> None:
    other = Alert(LIBRATO, "api 5xx rate", "777", since=NOW)
    await with_librato.record([other], [], NOW)
    clock.now = NOW + timedelta(minutes=1)
    with librato_mock() as mock:  # the feed lags: the alert itself says triggered
        librato_api(mock, {"firing": [], "cleared": []})
        asked = mock.get("/v1/alerts/777/status").respond(
            json={"alert": {"id": 777}, "status": "triggered"}
        )
        await with_librato.refresh([API_SVC])
        assert asked.called
    assert (await with_librato.gather(API_SVC, clock.now)).firing == (other,)  # type: ignore[union-attr]

    with librato_mock() as mock:  # now it is ok: gone
        librato_api(mock, {"firing": [], "cleared": []})
        mock.get("/v1/alerts/777/status").respond(json={"alert": {"id": 777}, "status": "ok"})
        assert await with_librato.refresh([API_SVC]) == ["api"]
    assert await with_librato.gather(API_SVC, clock.now) == AlertsFacts(())


async def test_a_webhook_newer_than_the_poll_is_kept(with_librato: AlertsView) -> None:
    later = NOW + timedelta(seconds=1)
    await with_librato.record([Alert(LIBRATO, "api 5xx rate", "777", since=later)], [], later)
    with librato_mock() as mock:
        librato_api(mock, {"firing": [], "cleared": []})
        assert await with_librato.poll(NOW)  # started before the webhook arrived
    assert [a.id for a in (await with_librato.gather(API_SVC, later)).firing] == ["777"]  # type: ignore[union-attr]


async def test_a_firing_alert_whose_name_is_unknown(with_librato: AlertsView) -> None:
    with librato_mock() as mock:
        mock.get("/v1/alerts/status").respond(json=STATUS)
        mock.get(url__regex=r"/v1/alerts/\d+$").respond(500)
        await with_librato.refresh([API_SVC])
    facts = await with_librato.gather(API_SVC, NOW, fetch=False)
    assert facts is not None
    assert facts.firing == ()
    assert facts.problem == (
        "Librato alerts fire whose names are not known: #106, #129 (retried at the next poll)"
    )
    by_id = await with_librato.gather(BY_ID, NOW, fetch=False)  # an id needs no name
    assert by_id is not None
    assert by_id.problem is None
    assert [a.id for a in by_id.firing] == ["106"]

    with librato_mock() as mock:  # the next poll names them
        librato_api(mock)
        assert await with_librato.refresh([API_SVC, BY_ID]) == ["api", "ids"]
    assert [a.name for a in (await with_librato.gather(API_SVC, NOW)).firing] == ["api 5xx rate"]  # type: ignore[union-attr]
