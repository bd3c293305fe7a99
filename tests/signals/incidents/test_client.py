"""The status page reader (`app.signals.incidents.client`) and the shapes it reads
(`app.signals.incidents.pages`): shapes recognised, bodies read, failures.

Heroku v4: the heroku/cli test mock in tests/fixtures/status/ (FORMATS.md §5), and the
same with an incident in the shape the CLI's `status` command reads (`title`, `created_at`,
`full_url`, `updates[{update_type, updated_at, contents}]`, heroku/cli status.ts).
"""

import copy
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from app.signals.incidents.client import StatusFeed
from app.signals.incidents.facts import Component, Feed, Incident
from app.signals.incidents.pages import StatusFeedError, parse, recognise
from tests.conftest import FIXTURES

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
FEED_URL = "https://status.example.test/api/v2/summary.json"
HEROKU_GREEN = json.loads(
    (FIXTURES / "status" / "heroku-status-v4-green-heroku-cli-test-mock.json").read_text()
)
WEBHOOKS = sorted((FIXTURES / "status").glob("statuspage-*.json"))

# A Statuspage `summary.json` written for these tests after Statuspage's public API v2
# format ("Summary": page, status, components, incidents = unresolved ones,
# scheduled_maintenances = upcoming or in progress), as documented on every Statuspage
# page's /api (for example https://confluence.status.atlassian.com/api) and on
# https://developer.statuspage.io. Ids and times are made up; one of each case the gate cares
# about: a troubled and a fine component, an open incident naming a component, an incident
# naming none, a maintenance in progress and one only scheduled.
SUMMARY: dict[str, Any] = {
    "page": {
        "id": "y2j98763l56x",
        "name": "Acme",
        "url": "https://status.acme.test",
        "time_zone": "Etc/UTC",
        "updated_at": "2026-05-01T11:58:00.000Z",
    },
    "status": {"indicator": "major", "description": "Partial System Outage"},
    "components": [
        {
            "id": "b13yz5g2cw10",
            "name": "API",
            "status": "partial_outage",
            "created_at": "2014-05-03T01:22:07.274Z",
            "updated_at": "2026-05-01T11:50:00.000Z",
            "position": 1,
            "description": None,
            "showcase": False,
            "group_id": None,
            "page_id": "y2j98763l56x",
            "group": False,
            "only_show_if_degraded": False,
        },
        {
            "id": "9397cnvk62zn",
            "name": "Management Portal",
            "status": "operational",
            "created_at": "2014-05-03T01:22:07.286Z",
            "updated_at": "2026-04-01T00:00:00.000Z",
            "position": 2,
            "description": None,
            "showcase": False,
            "group_id": None,
            "page_id": "y2j98763l56x",
            "group": False,
            "only_show_if_degraded": False,
        },
    ],
    "incidents": [
        {
            "id": "cp306tmzcl0y",
            "name": "Elevated API errors",
            "status": "identified",
            "impact": "major",
            "created_at": "2026-05-01T11:40:00.000Z",
            "updated_at": "2026-05-01T11:50:00.000-06:00",
            "monitoring_at": None,
            "resolved_at": None,
            "shortlink": "http://stspg.io/cp306",
            "started_at": "2026-05-01T11:40:00.000Z",
            "page_id": "y2j98763l56x",
            "incident_updates": [
                {
                    "id": "jdy3tw5mt5r5",
                    "status": "identified",
                    "body": "We found the cause.",
                    "incident_id": "cp306tmzcl0y",
                    "created_at": "2026-05-01T11:50:00.000Z",
                    "updated_at": "2026-05-01T11:50:00.000Z",
                    "display_at": "2026-05-01T11:50:00.000Z",
                }
            ],
            "components": [
                {"id": "b13yz5g2cw10", "name": "API", "status": "partial_outage"},
            ],
        },
        {
            "id": "x1ncd3nt",
            "name": "Slow everything",
            "status": "investigating",
            "impact": "minor",
            "created_at": "2026-05-01T11:55:00.000Z",
            "updated_at": "2026-05-01T11:55:00.000Z",
            "shortlink": "http://stspg.io/x1n",
            "page_id": "y2j98763l56x",
            "incident_updates": [],
        },
    ],
    "scheduled_maintenances": [
        {
            "id": "w1zdr745wmfy",
            "name": "Database upgrade",
            "status": "in_progress",
            "impact": "maintenance",
            "created_at": "2026-04-30T10:00:00.000Z",
            "updated_at": "2026-05-01T11:00:00.000Z",
            "shortlink": "http://stspg.io/w1z",
            "scheduled_for": "2026-05-01T11:00:00.000Z",
            "scheduled_until": "2026-05-01T13:00:00.000Z",
            "page_id": "y2j98763l56x",
            "incident_updates": [],
            "components": [{"id": "9397cnvk62zn", "name": "Management Portal"}],
        },
        {
            "id": "k7g299zl765l",
            "name": "Network upgrade",
            "status": "scheduled",
            "impact": "maintenance",
            "created_at": "2026-04-30T10:00:00.000Z",
            "updated_at": "2026-04-30T10:00:00.000Z",
            "shortlink": "http://stspg.io/k7g",
            "scheduled_for": "2026-05-02T01:00:00.000Z",
            "scheduled_until": "2026-05-02T03:00:00.000Z",
            "page_id": "y2j98763l56x",
            "incident_updates": [],
            "components": [],
        },
    ],
}


def heroku_with_incident() -> dict[str, Any]:
    body = copy.deepcopy(HEROKU_GREEN)
    body["status"][0]["status"] = "red"
    body["incidents"] = [
        {
            "title": "Elevated router errors",
            "created_at": "2026-05-01T11:30:00Z",
            "full_url": "https://status.heroku.com/incidents/2800",
            "updates": [
                {"update_type": "issue", "updated_at": "2026-05-01T11:30:00Z", "contents": "…"},
                {"update_type": "update", "updated_at": "2026-05-01T11:45:00Z", "contents": "…"},
            ],
        }
    ]
    return body


def test_heroku_v4_all_green_is_nothing_open() -> None:
    assert recognise(HEROKU_GREEN).name == "Heroku v4 current-status"
    assert parse(HEROKU_GREEN, NOW) == Feed(NOW)


def test_heroku_v4_incident_touches_every_system_and_red_systems_count() -> None:
    read = parse(heroku_with_incident(), NOW)
    assert read.incidents == (
        Incident(
            id="https://status.heroku.com/incidents/2800",
            name="Elevated router errors",
            status="update",
            components=(),
            url="https://status.heroku.com/incidents/2800",
            updated_at=datetime(2026, 5, 1, 11, 45, tzinfo=UTC),
            created_at=datetime(2026, 5, 1, 11, 30, tzinfo=UTC),
        ),
    )
    assert read.components == (Component("Apps", "red"),)
    assert read.page_id is None


def test_statuspage_summary() -> None:
    assert recognise(SUMMARY).name == "Statuspage summary.json"
    read = parse(SUMMARY, NOW)
    assert read.page_id == "y2j98763l56x"
    assert read.fetched_at == NOW
    opened = {i.name: (i.status, i.components, i.url) for i in read.incidents}
    assert opened == {
        "Elevated API errors": ("identified", ("API",), "http://stspg.io/cp306"),
        "Slow everything": ("investigating", (), "http://stspg.io/x1n"),
        "Database upgrade": ("in_progress", ("Management Portal",), "http://stspg.io/w1z"),
    }  # the maintenance only scheduled is not open
    errors = next(i for i in read.incidents if i.id == "cp306tmzcl0y")
    assert errors.updated_at == datetime(2026, 5, 1, 17, 50, tzinfo=UTC)  # -06:00 understood
    assert [(c.name, c.status) for c in read.components] == [("API", "partial_outage")]


# The Salesforce Trust API (https://api.status.salesforce.com/v1), where Heroku's CLI looks
# when status.heroku.com does not answer. No real answer was saved: these are written after
# the Trust API's public documentation (api.status.salesforce.com/v1/docs: Instance with
# `key`, `status`, `Incidents`, `Maintenances`; Incident with `IncidentImpacts[{startTime,
# endTime}]`, `IncidentEvents[{type, message, createdAt}]`, `instanceKeys`, `affectsAll`;
# Maintenance with `name`, `plannedStartTime`, `plannedEndTime`, `MaintenanceImpacts`,
# `MaintenanceEvents`). Ids, keys and times are made up.
TRUST_INCIDENT: dict[str, Any] = {
    "id": 51234,
    "message": {"pathType": "core"},
    "externalId": None,
    "affectsAll": False,
    "isCore": True,
    "additionalInformation": None,
    "serviceKeys": ["Heroku"],
    "instanceKeys": ["HEROKU-US"],
    "IncidentImpacts": [
        {"id": 1, "type": "performanceDegradation", "severity": "minor",
         "startTime": "2026-05-01T11:30:00.000Z", "endTime": None},
    ],
    "IncidentEvents": [
        {"id": 7, "type": "investigating", "message": "Elevated router errors",
         "createdAt": "2026-05-01T11:31:00.000Z"},
    ],
    "createdAt": "2026-05-01T11:31:00.000Z",
    "updatedAt": "2026-05-01T11:40:00.000Z",
}  # fmt: skip


def trust_maintenance(ident: int, name: str, start: str, end: str, **more: Any) -> dict[str, Any]:
    return {
        "id": ident,
        "message": None,
        "externalId": f"ext-{ident}",
        "name": name,
        "affectsAll": False,
        "isCore": True,
        "plannedStartTime": start,
        "plannedEndTime": end,
        "serviceKeys": ["Heroku"],
        "instanceKeys": ["HEROKU-EU"],
        "MaintenanceImpacts": [],
        "MaintenanceEvents": [],
        "createdAt": "2026-04-20T09:00:00.000Z",
        "updatedAt": "2026-04-20T09:00:00.000Z",
    } | more


IN_PROGRESS = trust_maintenance(
    901, "Database upgrade", "2026-05-01T11:00:00.000Z", "2026-05-01T13:00:00.000Z"
)
LATER = trust_maintenance(
    902, "Router upgrade", "2026-05-02T11:00:00.000Z", "2026-05-02T13:00:00.000Z"
)
OVER_EARLY = trust_maintenance(
    903, "Cache upgrade", "2026-05-01T10:00:00.000Z", "2026-05-01T14:00:00.000Z",
    MaintenanceEvents=[{"id": 3, "type": "completed", "message": "done",
                        "createdAt": "2026-05-01T11:15:00.000Z"}],
)  # fmt: skip
TRUST_INSTANCE: dict[str, Any] = {
    "key": "HEROKU-US",
    "location": "NA",
    "environment": "production",
    "releaseVersion": "",
    "status": "MINOR_INCIDENT_CORE",
    "isActive": True,
    "Incidents": [TRUST_INCIDENT],
    "Maintenances": [IN_PROGRESS, LATER, OVER_EARLY],
}


def test_trust_api_instance_status_incidents_and_maintenances_in_progress() -> None:
    assert recognise(TRUST_INSTANCE).name == "Salesforce Trust API"
    read = parse(TRUST_INSTANCE, NOW)
    assert read.incidents == (
        Incident(
            id="trust-incident:51234",
            name="Elevated router errors",
            status="investigating",
            components=("HEROKU-US",),
            url="https://status.salesforce.com/incidents/51234",
            updated_at=datetime(2026, 5, 1, 11, 40, tzinfo=UTC),
            created_at=datetime(2026, 5, 1, 11, 31, tzinfo=UTC),
        ),
        Incident(
            id="trust-maintenance:901",
            name="Database upgrade",
            status="in progress",
            components=("HEROKU-EU",),
            url="https://status.salesforce.com/maintenances/901",
            updated_at=datetime(2026, 4, 20, 9, 0, tzinfo=UTC),
            kind="maintenance",
        ),
    )  # the one scheduled for tomorrow and the one completed early are not open
    assert read.components == (Component("HEROKU-US", "MINOR_INCIDENT_CORE"),)


def test_trust_api_lists_active_incidents_maintenances_or_instances() -> None:
    assert [i.id for i in parse([TRUST_INCIDENT], NOW).incidents] == ["trust-incident:51234"]
    maintenances = parse([IN_PROGRESS, LATER], NOW)
    assert [(i.name, i.kind) for i in maintenances.incidents] == [
        ("Database upgrade", "maintenance")
    ]
    green = TRUST_INSTANCE | {"status": "OK", "Incidents": [], "Maintenances": []}
    assert parse([green], NOW) == Feed(NOW)
    assert parse([], NOW) == Feed(NOW)  # `/v1/incidents/active` with nothing active
    ended = copy.deepcopy(TRUST_INCIDENT)
    ended["IncidentImpacts"][0]["endTime"] = "2026-05-01T11:50:00.000Z"
    assert parse([ended], NOW).incidents == ()
    everywhere = TRUST_INCIDENT | {"affectsAll": True}
    assert parse([everywhere], NOW).incidents[0].components == ()  # touches every service


@pytest.mark.parametrize("path", WEBHOOKS, ids=[p.name for p in WEBHOOKS])
def test_a_webhook_body_is_not_a_feed(path: Any) -> None:
    with pytest.raises(StatusFeedError, match="neither a Heroku v4 current-status nor a"):
        recognise(json.loads(path.read_text()))


BAD_TIME = {"id": "1", "name": "x", "status": "identified", "updated_at": "soon"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"incidents": []}, r"neither .* \(it has: incidents\)"),
        ([1, 2], r"neither .* \(it has: list\)"),
        ({"status": [{"system": "Apps"}], "incidents": []}, "looks like a Heroku v4"),
        ({"page": {}, "components": [{}], "incidents": []}, "looks like a Statuspage"),
        ({"page": {}, "components": [], "incidents": [BAD_TIME]},
         "looks like a Statuspage summary.json but could not be read: ValueError"),
    ],
    ids=["unknown-keys", "not-an-object", "heroku-missing-status", "statuspage-missing-name",
         "bad-time"],
)  # fmt: skip
def test_an_unknown_or_broken_shape_says_so(body: Any, message: str) -> None:
    with pytest.raises(StatusFeedError, match=message):
        parse(body, NOW)


# over HTTP -----------------------------------------------------------------------------


@pytest.fixture
async def feed() -> Any:
    reader = StatusFeed(FEED_URL)
    yield reader
    await reader.aclose()


@respx.mock
async def test_read_over_http(feed: StatusFeed) -> None:
    route = respx.get(FEED_URL).respond(200, json=SUMMARY)
    read = await feed.read(NOW)
    assert route.called
    assert {i.name for i in read.incidents} >= {"Elevated API errors"}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (httpx.Response(503), "^HTTP 503$"),
        (httpx.Response(404), "HTTP 404: check STATUS_API_URL .*Salesforce Trust API"),
        (httpx.Response(200, text="<html>"), "not JSON"),
        (httpx.ConnectError("refused"), "^ConnectError: refused$"),
        (httpx.ReadTimeout("slow"), "^ReadTimeout: slow$"),
    ],
    ids=["503", "404", "html", "refused", "timeout"],
)
@respx.mock
async def test_read_failures(
    feed: StatusFeed, answer: httpx.Response | Exception, message: str
) -> None:
    route = respx.get(FEED_URL)
    if isinstance(answer, Exception):
        route.side_effect = answer
    else:
        route.return_value = answer
    with pytest.raises(StatusFeedError, match=message):
        await feed.read(NOW)
