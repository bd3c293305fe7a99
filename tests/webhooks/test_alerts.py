"""`POST /webhooks/librato` and `/webhooks/alertmanager`, and the alerts gate, in-process.

Deliveries are the samples of tests/fixtures/librato/ and tests/fixtures/alertmanager/
(FORMATS.md §4, §5). Librato posts a form whose field `payload` holds the JSON; a raw
JSON body is accepted too. Cascade runs on the sandbox, authenticated by its webhook token.
"""

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import respx

from app.signals.alerts.facts import ALERTMANAGER, LIBRATO
from app.storage import keys
from tests.conftest import FIXTURES
from tests.inprocess import Cascade, Json, Start, eventually

TOKEN = "webhook-token"
LIBRATO_API = "http://librato.test"
LIBRATO_HOOKS = sorted(p for p in (FIXTURES / "librato").glob("*.json") if "-api-" not in p.name)
ALERTMANAGER_SAMPLES = sorted((FIXTURES / "alertmanager").glob("*.json"))
ALERTMANAGER_SAMPLE = FIXTURES / "alertmanager" / "zulip-alertmanager-alert-firing.json"
SERVICES = """
[defaults]
min_age = "0s"

[[service]]
name = "api"
pipeline = "api"
stages = ["api-qa", "api-st", "api-prod"]
alerts = ["collectd.high.load", "6294535", "a.test.name", "Alert_name",
          'High CPU Temperature{host="andromeda"}', "api 5xx rate"]

[[service]]
name = "web"
pipeline = "web"
stages = ["web-dev", "web-prod"]
alerts = ['High CPU Temperature{host="sirius"}']
"""
ENCODINGS = ("form", "json")


@pytest.fixture
async def cascade(start_cascade: Start, tmp_path: Path) -> Cascade:
    return await start(start_cascade, tmp_path)


async def start(start_cascade: Start, tmp_path: Path, **settings: Any) -> Cascade:
    config = tmp_path / "alerts.toml"
    config.write_text(SERVICES)
    chosen: dict[str, Any] = {"config_path": config, "webhook_token": TOKEN} | settings
    return await start_cascade(**chosen)


def load(path: Path) -> Json:
    payload: Json = json.loads(path.read_text())
    return payload


def librato_sample(path: Path) -> Json:
    """The notification itself: the KB's cleared example wraps it in {"payload": …}."""
    raw: Json = json.loads(path.read_text())
    inner: Json = raw.get("payload", raw)
    return inner


async def to_librato(
    cascade: Cascade, payload: Json, encoding: str = "form", token: str | None = TOKEN
) -> httpx.Response:
    params = {"token": token} if token else {}
    if encoding == "form":  # as Librato sends it
        body = urlencode({"payload": json.dumps(payload)})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    else:
        body, headers = json.dumps(payload), {"Content-Type": "application/json"}
    return await cascade.client.post(
        "/webhooks/librato", content=body, headers=headers, params=params
    )


async def to_alertmanager(
    cascade: Cascade, payload: Json | bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sent = headers if headers is not None else {"Authorization": f"Bearer {TOKEN}"}
    return await cascade.client.post("/webhooks/alertmanager", content=body, headers=sent)


def accepted(response: httpx.Response) -> Json:
    assert response.status_code == 202, response.text
    body: Json = response.json()
    assert body["status"] == "accepted", body
    return body


def alertmanager_firing() -> Json:
    return load(ALERTMANAGER_SAMPLE)


def alertmanager_resolved(host: str = "andromeda") -> Json:
    """No real resolved notification was saved (FORMATS.md §6): this one is the firing sample
    with what Alertmanager changes when the alerts resolve: `status` and each `endsAt`."""
    payload = alertmanager_firing()
    payload["status"] = "resolved"
    for alert in payload["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = "2020-02-06T00:32:58.432911368Z"
        alert["labels"]["host"] = host
    return payload


def for_host(payload: Json, host: str) -> Json:
    changed = copy.deepcopy(payload)
    for alert in changed["alerts"]:
        alert["labels"]["host"] = host
    return changed


async def firing_keys(cascade: Cascade) -> list[str]:
    return sorted(str(key) for key in await cascade.runtime.redis.hkeys(keys.ALERTS_FIRING))


async def alerts_gate(cascade: Cascade, service: str) -> Json | None:
    for promotion in (await cascade.json(f"/status/{service}"))["promotions"]:
        for gate in promotion["gates"]:
            if gate["name"] == "alerts":
                found: Json = gate
                return found
    return None


# Librato ---------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("path", LIBRATO_HOOKS, ids=[p.name for p in LIBRATO_HOOKS])
async def test_every_librato_sample(cascade: Cascade, path: Path, encoding: str) -> None:
    payload = librato_sample(path)
    alert_id = str(payload["alert"]["id"])
    if payload.get("triggered_by_user_test"):
        body = accepted(await to_librato(cascade, payload, encoding))
        assert body["services"] == []
        assert "recorded, not firing" in body["detail"]
        assert await firing_keys(cascade) == []
        tests = [e for e in await cascade.events(service="api") if e["kind"] == "signal.alert_test"]
        assert len(tests) == 1
        assert payload["alert"]["name"] in tests[0]["message"]
        return
    if "clear" in payload:  # it must have fired first
        triggered = {k: v for k, v in payload.items() if k != "clear"}
        assert accepted(await to_librato(cascade, triggered, encoding))["services"] == ["api"]
        assert await firing_keys(cascade) == [f"{LIBRATO}:{alert_id}"]
    body = accepted(await to_librato(cascade, payload, encoding))
    assert body["services"] == ["api"]  # the entry names it; "web" does not
    expected = [] if "clear" in payload else [f"{LIBRATO}:{alert_id}"]
    assert await firing_keys(cascade) == expected
    assert LIBRATO in await cascade.runtime.store.last_heard()
    kinds = [e["kind"] for e in await cascade.events(service="api")]
    assert "signal.alerts" in kinds
    assert not [e for e in await cascade.events(service="web") if e["kind"] == "signal.alerts"]


async def test_the_kb_wrapped_payload_is_accepted_as_raw_json(cascade: Cascade) -> None:
    raw = json.loads((FIXTURES / "librato" / "librato-kb-webhook-cleared.json").read_text())
    assert "payload" in raw
    body = accepted(await to_librato(cascade, raw, "json"))
    assert body["detail"] == '"a.test.name" (librato #6268092) cleared'


async def test_a_librato_alert_no_service_lists_reconciles_none(cascade: Cascade) -> None:
    payload = librato_sample(FIXTURES / "librato" / "librato-kb-webhook-triggered.json")
    payload["alert"] |= {"name": "someone.elses", "id": 1}
    assert accepted(await to_librato(cascade, payload))["services"] == []
    assert await firing_keys(cascade) == [f"{LIBRATO}:1"]  # kept: a reload may list it


# Alertmanager ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALERTMANAGER_SAMPLES, ids=[p.name for p in ALERTMANAGER_SAMPLES])
async def test_every_alertmanager_sample(cascade: Cascade, path: Path) -> None:
    payload = load(path)
    body = accepted(await to_alertmanager(cascade, payload))
    fingerprints = sorted(f"{ALERTMANAGER}:{a['fingerprint']}" for a in payload["alerts"])
    assert await firing_keys(cascade) == fingerprints
    assert body["services"] == ["api"]
    assert ALERTMANAGER in await cascade.runtime.store.last_heard()


async def test_the_alertmanager_sample_fires_then_resolves(cascade: Cascade) -> None:
    body = accepted(await to_alertmanager(cascade, alertmanager_firing()))
    assert (body["services"], body["detail"]) == (["api"], "2 firing, 0 resolved")

    body = accepted(await to_alertmanager(cascade, alertmanager_resolved()))
    assert (body["services"], body["detail"]) == (["api"], "0 firing, 2 resolved")
    assert await firing_keys(cascade) == []
    events = await cascade.events(service="api")
    messages = [e["message"] for e in events if e["kind"] == "signal.alerts"]
    assert messages[0].startswith('cleared: "High CPU Temperature" (alertmanager, host=andromeda')
    assert messages[1].startswith('firing: "High CPU Temperature" (alertmanager, host=andromeda')


async def test_each_alert_carries_its_own_status(cascade: Cascade) -> None:
    mixed = alertmanager_firing()
    mixed["alerts"][1] |= {"status": "resolved", "endsAt": "2020-02-06T00:30:00Z"}
    mixed["alerts"][1]["labels"]["host"] = "sirius"
    body = accepted(await to_alertmanager(cascade, mixed))
    assert (body["services"], body["detail"]) == (["api", "web"], "1 firing, 1 resolved")
    assert await firing_keys(cascade) == ["alertmanager:a1bc48475b20e73d"]


async def test_a_late_resolve_does_not_open_the_gate_on_an_alert_firing_again(
    cascade: Cascade,
) -> None:
    """Episode 1 fires and resolves, episode 2 fires; the HA peer's copy of episode 1's
    "resolved" comes last. Ordered by the alerts' own times, the gate stays closed."""
    accepted(await to_alertmanager(cascade, alertmanager_firing()))
    resolved = alertmanager_resolved()
    accepted(await to_alertmanager(cascade, resolved))
    again = alertmanager_firing()
    for alert in again["alerts"]:
        alert["startsAt"] = "2020-02-06T01:00:00Z"
    accepted(await to_alertmanager(cascade, again))
    body = accepted(await to_alertmanager(cascade, resolved))
    assert body["detail"].startswith("0 firing, 2 resolved"), body
    assert await firing_keys(cascade) == [
        "alertmanager:a1bc48475b20e73d",
        "alertmanager:c2ea85182f28cbd9",
    ]
    assert "2 out of order" in body["detail"]


async def test_a_truncated_notification_makes_the_group_unknown_until_a_whole_one(
    cascade: Cascade,
) -> None:
    cut = alertmanager_firing()
    cut |= {"truncatedAlerts": 4, "groupKey": '{}:{alertname="High CPU Temperature"}'}
    cut["groupLabels"] = {"alertname": "High CPU Temperature"}
    body = accepted(await to_alertmanager(cascade, cut))
    assert body["detail"].endswith("4 left out (set max_alerts: 0 for Cascade)")
    api, _web = cascade.runtime.catalog.services
    alerts = cascade.runtime.views.alerts
    view = await alerts.gather(api, datetime.now(UTC), fetch=False)
    assert view is not None
    assert view.problem is not None
    assert "left 4 alerts of the group alertname=High CPU Temperature out" in view.problem

    accepted(await to_alertmanager(cascade, cut | {"truncatedAlerts": 0}))
    view = await alerts.gather(api, datetime.now(UTC), fetch=False)
    assert view is not None
    assert view.problem is None


async def test_status_says_when_each_source_was_last_heard(cascade: Cascade) -> None:
    assert (await cascade.json("/status"))["sources"] == []
    accepted(await to_alertmanager(cascade, alertmanager_firing()))
    (source,) = (await cascade.json("/status"))["sources"]
    assert (source["signal"], source["source"], source["how"]) == (
        "alerts",
        ALERTMANAGER,
        "webhook",
    )
    assert (source["stale"], source["limit_seconds"]) == (False, 86400.0)
    assert source["last_heard"] is not None


# refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["missing", "wrong", "not-bearer"],
)
async def test_alertmanager_without_the_token_is_refused(
    cascade: Cascade, headers: dict[str, str]
) -> None:
    response = await to_alertmanager(cascade, alertmanager_firing(), headers)
    assert response.status_code == 401, response.text
    assert await firing_keys(cascade) == []
    assert ALERTMANAGER not in await cascade.runtime.store.last_heard()


@pytest.mark.parametrize("token", [None, "wrong"], ids=["missing", "wrong"])
async def test_librato_without_the_token_is_refused(cascade: Cascade, token: str | None) -> None:
    payload = librato_sample(FIXTURES / "librato" / "librato-kb-webhook-triggered.json")
    response = await to_librato(cascade, payload, token=token)
    assert response.status_code == 401, response.text
    assert await firing_keys(cascade) == []
    assert LIBRATO not in await cascade.runtime.store.last_heard()
    assert not [e for e in await cascade.events() if e["kind"].startswith("signal.")]


async def test_without_a_token_configured_everything_is_refused(
    start_cascade: Start, tmp_path: Path
) -> None:
    cascade = await start(start_cascade, tmp_path, webhook_token=None)
    response = await to_alertmanager(cascade, alertmanager_firing())
    assert response.status_code == 401
    assert "CASCADE_WEBHOOK_TOKEN is not set" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"other=1", "application/x-www-form-urlencoded", 400, "no form field `payload`"),
        (b"payload=%7Bnot", "application/x-www-form-urlencoded", 400, "not valid JSON"),
        (b'{"account": "x"}', "application/json", 422, "alert: Field required"),
        (b'{"alert": {"id": 1}}', "application/json", 422, "alert.name: Field required"),
    ],
    ids=["bad-json", "no-payload-field", "bad-json-in-form", "no-alert", "no-name"],
)
async def test_malformed_librato_deliveries(
    cascade: Cascade, body: bytes, content_type: str, status: int, says: str
) -> None:
    response = await cascade.client.post(
        "/webhooks/librato",
        content=body,
        headers={"Content-Type": content_type, "Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == status, response.text
    assert says in response.json()["detail"]
    assert await firing_keys(cascade) == []


def _without_alertname() -> Json:
    payload = alertmanager_firing()
    del payload["alerts"][1]["labels"]["alertname"]
    return payload


@pytest.mark.parametrize(
    ("payload", "status", "says"),
    [
        (b"[", 400, "not valid JSON"),
        ({"version": "4"}, 422, "alerts: Field required"),
        (alertmanager_firing() | {"version": "3"}, 422, "version 4"),
        (_without_alertname(), 422, "alerts.1: no alertname label"),
        ({"version": "4", "alerts": [{"status": "pending", "labels": {}}]}, 422, "alerts.0.status"),
    ],
    ids=["bad-json", "no-alerts", "other-version", "no-alertname", "bad-status"],
)
async def test_malformed_alertmanager_deliveries(
    cascade: Cascade, payload: Json | bytes, status: int, says: str
) -> None:
    response = await to_alertmanager(cascade, payload)
    assert response.status_code == status, response.text
    assert says in response.json()["detail"]
    assert await firing_keys(cascade) == []


# the gate, end to end ----------------------------------------------------------------------


async def test_a_firing_alert_blocks_and_its_clearing_promotes(cascade: Cascade) -> None:
    """Acceptance: a ready promotion waits while an alert fires, named in /status, and goes
    ahead on the webhook that clears it, without waiting for the tick (an hour here)."""
    accepted(await to_alertmanager(cascade, alertmanager_firing()))
    assert cascade.runtime.sandbox is not None
    commit = "a" * 40
    await cascade.runtime.sandbox.deploy("api-qa", commit)

    async def blocked() -> Json | None:
        gate = await alerts_gate(cascade, "api")
        return gate if gate and gate["state"] == "closed" else None

    gate = await eventually(blocked, "the alerts gate to close the api-qa → api-st promotion")
    assert gate["reason"].startswith('"High CPU Temperature" firing since 2020-02-06 00:17 UTC')
    assert "(alertmanager, 2 alerts, host=andromeda, severity=critical)" in gate["reason"]
    await cascade.settle()
    assert await cascade.stage_commit("api", "api-st") != commit

    accepted(await to_alertmanager(cascade, alertmanager_resolved()))
    await eventually(
        lambda: _has(cascade, "api", "api-st", commit), "the commit to reach api-st", timeout=20
    )


async def test_an_alert_of_one_service_does_not_touch_another(cascade: Cascade) -> None:
    """Acceptance: a signal reconciles only the services it concerns."""
    body = accepted(await to_alertmanager(cascade, alertmanager_firing()))  # host=andromeda
    assert body["services"] == ["api"]
    assert cascade.runtime.sandbox is not None
    await cascade.runtime.sandbox.deploy("api-qa", "a" * 40)
    await cascade.runtime.sandbox.deploy("web-dev", "b" * 40)
    await eventually(lambda: _has(cascade, "web", "web-prod", "b" * 40), "web to be promoted")
    gate = await alerts_gate(cascade, "api")
    assert gate is not None
    assert gate["state"] == "closed"

    other = accepted(await to_alertmanager(cascade, for_host(alertmanager_firing(), "sirius")))
    assert other["services"] == ["web"]
    api_events = await cascade.events(service="api", limit=1000)
    assert [e for e in api_events if e["kind"] == "signal.alerts"] == [
        e for e in api_events if e["kind"] == "signal.alerts" and "andromeda" in e["message"]
    ]


async def test_unreachable_librato_blocks_until_it_answers(
    start_cascade: Start, tmp_path: Path
) -> None:
    """Acceptance: Librato unreachable and nothing in the view: unknown, nothing promoted;
    once it answers, the promotion goes ahead by itself (the gate's recheck_at)."""
    with respx.mock(base_url=LIBRATO_API, assert_all_called=False) as librato:
        status = librato.get("/v1/alerts/status")
        status.side_effect = httpx.ConnectError("connection refused")
        cascade = await start(
            start_cascade,
            tmp_path,
            librato_user="ops@example.com",
            librato_token="librato-token",
            librato_api_url=LIBRATO_API,
            signal_retry_seconds=0.2,
        )
        # Alertmanager has reported (nothing fires): only Librato's feed is in question
        accepted(await to_alertmanager(cascade, alertmanager_resolved("sirius")))
        assert cascade.runtime.sandbox is not None
        commit = "c" * 40
        await cascade.runtime.sandbox.deploy("api-qa", commit)

        async def unknown() -> Json | None:
            gate = await alerts_gate(cascade, "api")
            return gate if gate and gate["state"] == "unknown" else None

        gate = await eventually(unknown, "the alerts gate to be unknown")
        assert "Librato's alert status has not been read yet" in gate["reason"]
        assert "connection refused" in gate["reason"]
        await eventually(lambda: _called(status, 2), "Cascade to try Librato again")
        assert await cascade.stage_commit("api", "api-st") != commit

        status.side_effect = None
        status.return_value = httpx.Response(200, json={"firing": [], "cleared": []})
        await eventually(
            lambda: _has(cascade, "api", "api-st", commit), "the commit to reach api-st", timeout=20
        )


async def _has(cascade: Cascade, service: str, app: str, commit: str) -> bool:
    return await cascade.stage_commit(service, app) == commit


async def _called(route: respx.Route, times: int) -> bool:
    return route.call_count >= times
