"""`IncidentsView` against a real Redis, with respx for STATUS_API_URL (unmatched calls fail).

Times are passed in (`now`, and a clock for `refresh`); nothing reads the wall clock.
"""

import copy
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx

from app.config.services import Service
from app.config.settings import Settings
from app.signals.incidents.client import StatusFeed
from app.signals.incidents.facts import Component, Incident, IncidentsFacts
from app.signals.incidents.problems import NO_SOURCE
from app.signals.incidents.view import SOURCE, IncidentsView, affected
from app.storage import keys
from app.storage.client import Client
from tests.conftest import FIXTURES
from tests.factories import service
from tests.signals.incidents.test_client import SUMMARY, heroku_with_incident

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
URL = "https://status.example.test/api/v4/current-status"
RETRY = timedelta(seconds=10)
GREEN = json.loads(
    (FIXTURES / "status" / "heroku-status-v4-green-heroku-cli-test-mock.json").read_text()
)
APPS, DATA, ALL = (
    service("apps", incident_systems=("Apps",)),
    service("data", incident_systems=("Data",)),
    service("all"),
)
SERVICES = [APPS, DATA, ALL]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


Make = Callable[..., IncidentsView]


@pytest.fixture
def redis_client(server_or_cluster: Client) -> Client:
    """Every test here runs on one server and on a three-master Redis Cluster."""
    return server_or_cluster


@pytest.fixture
async def make(redis_client: Client) -> AsyncIterator[Make]:
    made: list[IncidentsView] = []

    def build(url: str | None = URL, clock: Clock | None = None) -> IncidentsView:
        view = IncidentsView(
            redis_client,
            StatusFeed(url) if url else None,
            retry=RETRY,
            clock=clock or Clock(),
        )
        made.append(view)
        return view

    yield build
    for view in made:
        await view.aclose()


@pytest.fixture
def page() -> Any:
    with respx.mock(assert_all_called=False) as router:
        yield router.get(URL)


async def facts(view: IncidentsView, svc: Service, now: datetime) -> IncidentsFacts:
    found = await view.gather(svc, now)
    assert found is not None
    return found


# applicability -------------------------------------------------------------------------


async def test_no_status_source_at_all(make: Make, redis_client: Client) -> None:
    view = make(url=None)
    assert await view.gather(ALL, T0) is None  # watches nothing, nothing configured
    watching = await facts(view, APPS, T0)
    assert (watching.problem, watching.recheck_at) == (NO_SOURCE, T0 + RETRY)

    await redis_client.hset(keys.HEARD, SOURCE, str(T0.timestamp()))  # a webhook came once
    for svc in SERVICES:
        assert await facts(view, svc, T0) == IncidentsFacts(())


async def test_webhooks_only_block_by_what_they_said(make: Make, redis_client: Client) -> None:
    view = make(url=None)
    await redis_client.hset(keys.HEARD, SOURCE, str(T0.timestamp()))
    news = Incident("i1", "DB slow", "identified", ("Data",), updated_at=T0)
    assert await view.record_incident(news, T0) == [("Data",)]
    assert (await facts(view, DATA, T0)).incidents == (news,)
    assert (await view.gather(DATA, T0, fetch=False)) == await view.gather(DATA, T0)


async def test_silent_status_webhooks_are_unknown_after_the_allowed_silence(
    make: Make, redis_client: Client
) -> None:
    """Statuspage sends nothing while nothing happens: "no incident" ages like any silence."""
    view = make(url=None)
    await redis_client.hset(keys.HEARD, SOURCE, str(T0.timestamp()))
    assert await facts(view, APPS, T0 + timedelta(hours=23)) == IncidentsFacts(())
    later = T0 + timedelta(hours=24, seconds=1)
    found = await facts(view, APPS, later)
    assert found.problem == (
        "the status webhooks were last heard 1d1s ago, longer than"
        " CASCADE_SILENT_SOURCE_MAX_AGE (1d) allows: set STATUS_API_URL (it is read every"
        " poll), or check the status page's webhook to Cascade"
    )
    assert found.recheck_at == later + RETRY


def test_a_polled_status_page_is_stale_after_three_missed_polls(
    redis_client: Client,
) -> None:
    settings = Settings(status_api_url=URL, poll_seconds=120)
    view = IncidentsView.from_settings(settings, redis_client)
    assert (view.expected.stale_after, view.expected.silence_max) == (
        timedelta(minutes=6),
        timedelta(days=1),
    )


# the feed: fresh, stale, unreachable, back ---------------------------------------------


async def test_not_read_yet_is_unknown(make: Make) -> None:
    found = await facts(make(), ALL, T0)
    assert found.problem == f"the status page ({URL}) has not been read yet"
    assert found.recheck_at == T0 + RETRY


async def test_fresh_then_stale_with_failures_then_back(make: Make, page: respx.Route) -> None:
    clock = Clock()
    view = make(clock=clock)
    page.respond(200, json=GREEN)
    assert await view.refresh(SERVICES) == ["apps", "data", "all"]  # known now: all
    assert await facts(view, APPS, T0) == IncidentsFacts(())
    assert await view.refresh(SERVICES) == []  # the same again: nobody

    page.respond(503)
    told = []
    for minute in range(1, 5):
        clock.now = T0 + timedelta(minutes=minute)
        told.append(await view.refresh(SERVICES))
        found = await facts(view, APPS, clock.now)
        assert (found.problem is None) is (minute <= 3), (minute, found)  # 3 missed polls
    assert told == [[], [], [], ["apps", "data", "all"]]  # told once, when it went stale
    assert found.problem == f"the status page ({URL}) was last read 4m ago: HTTP 503"
    assert found.recheck_at == clock.now + RETRY

    page.respond(200, json=GREEN)
    clock.now += timedelta(minutes=1)
    assert await view.refresh(SERVICES) == ["apps", "data", "all"]
    assert await facts(view, APPS, clock.now) == IncidentsFacts(())


async def test_unreachable_from_the_start(make: Make, page: respx.Route) -> None:
    clock = Clock()
    view = make(clock=clock)
    page.side_effect = httpx.ConnectError("connection refused")
    assert await view.refresh(SERVICES) == []  # it was not known before either
    clock.now = T0 + timedelta(minutes=2)
    assert await view.refresh(SERVICES) == []
    found = await facts(view, DATA, clock.now)
    assert found.problem == (
        f"the status page ({URL}) cannot be read, for 2m: ConnectError: connection refused"
    )
    assert found.recheck_at == clock.now + RETRY

    page.side_effect = None
    page.respond(200, json=GREEN)
    assert await view.refresh(SERVICES) == ["apps", "data", "all"]
    assert (await facts(view, DATA, clock.now)).problem is None


async def test_a_feed_change_concerns_only_the_services_watching_it(
    make: Make, page: respx.Route
) -> None:
    clock = Clock()
    view = make(clock=clock)
    page.respond(200, json=GREEN)
    await view.refresh(SERVICES)

    red = copy.deepcopy(GREEN)
    red["status"][1]["status"] = "red"  # Data
    page.respond(200, json=red)
    assert await view.refresh(SERVICES) == ["all", "data"]
    assert (await facts(view, DATA, T0)).components == (Component("Data", "red"),)

    page.respond(200, json=heroku_with_incident())  # names no system: every service
    assert await view.refresh(SERVICES) == ["all", "apps", "data"]
    assert [i.name for i in (await facts(view, APPS, T0)).incidents] == ["Elevated router errors"]


async def test_a_newer_webhook_resolution_beats_the_feed(make: Make, page: respx.Route) -> None:
    clock = Clock()
    view = make(clock=clock)
    page.respond(200, json=SUMMARY)
    await view.refresh(SERVICES)
    assert "Elevated API errors" in [i.name for i in (await facts(view, ALL, T0)).incidents]

    resolved = Incident(
        "cp306tmzcl0y",
        "Elevated API errors",
        "resolved",
        ("API",),
        updated_at=T0 + timedelta(seconds=30),  # after the read at T0
        page_id="y2j98763l56x",
    )
    assert await view.record_incident(resolved, T0) == [("API",)]
    names = [i.name for i in (await facts(view, ALL, T0)).incidents]
    assert "Elevated API errors" not in names
    assert names == ["Database upgrade", "Slow everything"]


async def test_fetch_false_makes_no_http_call(make: Make, page: respx.Route) -> None:
    page.respond(200, json=GREEN)
    view = make()
    for fetch in (False, True):  # gather never calls out: only `refresh` reads the page
        await view.gather(APPS, T0, fetch=fetch)
    assert page.call_count == 0


async def test_a_read_of_another_url_is_not_used(make: Make, page: respx.Route) -> None:
    page.respond(200, json=GREEN)
    await make().refresh(SERVICES)
    other = make(url="https://status.other.test/summary.json")
    found = await facts(other, APPS, T0)
    assert found.problem == (
        "the status page (https://status.other.test/summary.json) has not been read yet"
    )


# the webhook view ------------------------------------------------------------------------


async def test_news_replaces_only_if_not_older(make: Make) -> None:
    view = make(url=None)
    first = Incident("i1", "DB slow", "identified", ("Data",), updated_at=T0)
    assert await view.record_incident(first, T0) == [("Data",)]
    assert await view.record_incident(first, T0) == []  # a repeat
    older = Incident("i1", "DB slow", "investigating", ("Data",), updated_at=T0 - timedelta(1))
    assert await view.record_incident(older, T0) == []
    moved = Incident("i1", "DB slow", "monitoring", ("Apps",), updated_at=T0 + timedelta(1))
    assert await view.record_incident(moved, T0) == [("Data",), ("Apps",)]  # before and now

    down = Component("Apps", "major_outage", T0)
    assert await view.record_component(down, T0) == [("Apps",)]
    assert (
        await view.record_component(Component("apps", "operational", T0 - timedelta(1)), T0) == []
    )


async def test_the_view_is_bounded(
    make: Make, redis_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "STATUS_VIEW_MAX", 5)
    view = make(url=None)
    old = T0 - timedelta(days=2)
    await view.record_incident(Incident("gone", "x", "resolved", updated_at=old), old)
    await view.record_incident(Incident("open", "x", "identified", updated_at=old), old)
    await view.record_incident(Incident("new", "x", "resolved", updated_at=T0), T0)
    fields = set(await redis_client.hkeys(keys.STATUS_VIEW))
    assert fields == {"incident:open", "incident:new"}  # closed news past a day is dropped

    for n in range(10):
        await view.record_incident(Incident(f"i{n}", "x", "identified", updated_at=T0), T0)
    fields = set(await redis_client.hkeys(keys.STATUS_VIEW))
    assert len(fields) == 5
    assert "incident:new" not in fields  # closed news goes first
    assert "incident:i9" in fields


def test_affected() -> None:
    assert affected(SERVICES, []) == []
    assert affected(SERVICES, [("Apps",)]) == ["all", "apps"]
    assert affected(SERVICES, [("Data",), ("Apps",)]) == ["all", "apps", "data"]
    assert affected(SERVICES, [()]) == ["all", "apps", "data"]
    assert affected(SERVICES, [("Tools",)]) == ["all"]
