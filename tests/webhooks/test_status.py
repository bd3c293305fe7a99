"""`POST /webhooks/status` and the incident gate, against Cascade run in-process.

Deliveries are the Statuspage captures of tests/fixtures/status/ (FORMATS.md §5: Zulip's
real webhooks). Two services watch different components of that page: "api" the
incident's "Management Portal (example)", "web" the "Database component" of the
component update. STATUS_API_URL is faked with respx where it is set.
"""

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from app.storage import keys
from tests.conftest import FIXTURES
from tests.inprocess import Cascade, Json, Start, eventually, observed, record_enqueues

TOKEN = "status-token"
DIR = FIXTURES / "status"
SAMPLES = sorted(DIR.glob("statuspage-*.json"))
CREATED = DIR / "statuspage-zulip-incident_created.json"
RESOLVED = DIR / "statuspage-zulip-incident_update-resolved.json"
COMPONENT = DIR / "statuspage-zulip-component_status_update.json"
HEROKU_GREEN = DIR / "heroku-status-v4-green-heroku-cli-test-mock.json"
FEED_URL = "https://status.example.test/api/v4/current-status"
SERVICES = """
[defaults]
min_age = "{min_age}"

[[service]]
name = "api"
pipeline = "api"
stages = ["api-qa", "api-st", "api-prod"]
incident_systems = ["Management Portal (example)"]

[[service]]
name = "web"
pipeline = "web"
stages = ["web-dev", "web-prod"]
incident_systems = ["Database component"]
"""


def load(path: Path) -> Json:
    payload: Json = json.loads(path.read_text())
    return payload


@pytest.fixture
def started(start_cascade: Start, tmp_path: Path) -> Any:
    async def start(min_age: str = "1h", **settings: Any) -> Cascade:
        config = tmp_path / "incident-services.toml"
        config.write_text(SERVICES.format(min_age=min_age))
        return await start_cascade(
            min_age=min_age, config_path=config, webhook_token=TOKEN, **settings
        )

    return start


async def deliver(
    cascade: Cascade, payload: Json | bytes, token: str | None = TOKEN, bearer: bool = False
) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    params = {}
    if token is not None and bearer:
        headers["Authorization"] = f"Bearer {token}"
    elif token is not None:
        params["token"] = token
    return await cascade.client.post(
        "/webhooks/status", content=body, headers=headers, params=params
    )


def accepted(response: httpx.Response, status: str = "accepted") -> Json:
    assert response.status_code == 202, response.text
    body: Json = response.json()
    assert body["status"] == status, body
    return body


async def incident_gate(cascade: Cascade, service: str) -> Json | None:
    promotions = (await cascade.json(f"/status/{service}"))["promotions"]
    gates = [g for p in promotions for g in p["gates"] if g["name"] == "incident"]
    return gates[0] if gates else None


# every sample -------------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
async def test_every_sample_is_accepted(started: Any, path: Path) -> None:
    cascade = await started()
    body = accepted(await deliver(cascade, load(path)))
    assert body["services"] == ["api", "web"]  # the first status webhook: every gate is known
    view = await cascade.runtime.redis.hkeys(keys.STATUS_VIEW)
    assert len(view) == 1
    again = accepted(await deliver(cascade, load(path), bearer=True), "duplicate")
    assert again["services"] is None


async def test_what_the_samples_say(started: Any) -> None:
    cascade = await started()
    created = accepted(await deliver(cascade, load(CREATED)))
    assert created["detail"] == "incident 'Database query delays' identified"
    views = cascade.runtime.views.incidents
    api = cascade.runtime.catalog.get("api")
    assert api is not None
    view = await views.gather(api, cascade.runtime.reconciler.clock(), fetch=False)
    assert view is not None
    (incident,) = view.incidents
    assert (incident.id, incident.components, incident.url, incident.page_id) == (
        "z3lct0r596n4",
        ("Management Portal (example)",),
        "http://stspg.io/646947c1e",
        "jb7j80lkgqvb",
    )
    resolved = accepted(await deliver(cascade, load(RESOLVED)))
    assert resolved["services"] == ["api"]
    view = await views.gather(api, cascade.runtime.reconciler.clock(), fetch=False)
    assert view is not None
    assert view.incidents == ()
    assert accepted(await deliver(cascade, load(CREATED)), "duplicate")  # older than resolved

    component = accepted(await deliver(cascade, load(COMPONENT)))
    assert component["detail"] == "component 'Database component' under_maintenance"
    assert component["services"] == ["web"]


# refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "detail"),
    [(None, "no token"), ("wrong", "does not match"), ("", "no token")],
    ids=["missing", "wrong", "empty"],
)
async def test_a_bad_token_is_refused_and_changes_nothing(
    started: Any, token: str | None, detail: str
) -> None:
    cascade = await started()
    before = await observed(cascade)
    response = await deliver(cascade, load(CREATED), token=token)
    assert response.status_code == 401, response.text
    assert detail in response.json()["detail"]
    assert await cascade.runtime.redis.hkeys(keys.STATUS_VIEW) == []
    assert "status" not in await cascade.runtime.store.last_heard()
    assert await observed(cascade) == before


async def test_without_a_configured_token_everything_is_refused(start_cascade: Start) -> None:
    cascade = await start_cascade()
    response = await deliver(cascade, load(CREATED))
    assert response.status_code == 401
    assert "CASCADE_WEBHOOK_TOKEN is not set" in response.json()["detail"]
    assert await cascade.runtime.redis.hkeys(keys.STATUS_VIEW) == []


def without(path: Path, *where: str) -> Json:
    payload = load(path)
    inner = payload
    for key in where[:-1]:
        inner = inner[key]
    del inner[where[-1]]
    return payload


@pytest.mark.parametrize(
    ("payload", "code", "detail"),
    [
        (b"{not json", 400, "body is not valid JSON"),
        (b"[1, 2]", 422, "not a Statuspage webhook: expected an object"),
        (without(CREATED, "incident", "id"), 422, "incident.id: Field required"),
        (without(COMPONENT, "component", "status"), 422, "component.status: Field required"),
        ({"incident": "down"}, 422, "incident: Input should be a valid dictionary"),
    ],
    ids=["not-json", "array", "incident-without-id", "component-without-status", "incident-str"],
)
async def test_a_malformed_delivery_is_refused(
    started: Any, payload: Json | bytes, code: int, detail: str
) -> None:
    cascade = await started()
    response = await deliver(cascade, payload)
    assert response.status_code == code, response.text
    assert detail in response.json()["detail"]
    assert await cascade.runtime.redis.hkeys(keys.STATUS_VIEW) == []


async def test_other_news_is_ignored(started: Any) -> None:
    cascade = await started()
    body = accepted(await deliver(cascade, {"meta": {}, "page": {"id": "p"}}), "ignored")
    assert body["detail"] == "neither an incident nor a component update"


# who is reconciled ------------------------------------------------------------------------


async def test_an_incident_on_one_system_reconciles_only_its_service(
    started: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cascade = await started()
    accepted(await deliver(cascade, load(COMPONENT)))  # the first one ever concerns all
    await cascade.settle()
    enqueued = record_enqueues(cascade, monkeypatch)

    body = accepted(await deliver(cascade, load(CREATED)))
    assert body["services"] == ["api"]
    assert enqueued == ["api"]

    everywhere = copy.deepcopy(load(CREATED))
    everywhere["incident"].update(id="other", components=[], incident_updates=[])
    assert accepted(await deliver(cascade, everywhere))["services"] == ["api", "web"]
    assert enqueued == ["api", "api", "web"]


# acceptance: blocked by an incident, promoted on its resolution -----------------------------


async def test_an_incident_blocks_and_its_resolution_promotes(started: Any) -> None:
    cascade = await started(min_age="0s")
    assert cascade.runtime.sandbox is not None
    accepted(await deliver(cascade, load(CREATED)))
    commit = "d" * 40
    await cascade.runtime.sandbox.deploy("api-qa", commit)

    async def blocked() -> Json | None:
        gate = await incident_gate(cascade, "api")
        return gate if gate and gate["state"] == "closed" else None

    gate = await eventually(blocked, "the incident gate to close the api-qa → api-st move")
    assert gate["reason"] == (
        "incident 'Database query delays' (identified) on Management Portal (example):"
        " http://stspg.io/646947c1e"
    )
    await cascade.settle()
    assert await cascade.stage_commit("api", "api-st") != commit

    accepted(await deliver(cascade, load(RESOLVED)))  # no tick: the tick is an hour away
    await eventually(lambda: _has(cascade, "api", "api-st", commit), "the commit to reach api-st")


async def test_an_unreachable_status_page_blocks_until_it_answers(started: Any) -> None:
    with respx.mock(assert_all_called=False) as router:
        page = router.get(FEED_URL)
        page.respond(503)
        cascade = await started(
            min_age="0s",
            status_api_url=FEED_URL,
            poll_seconds=0.2,
            signal_retry_seconds=0.2,
        )
        assert cascade.runtime.sandbox is not None
        commit = "e" * 40
        await cascade.runtime.sandbox.deploy("web-dev", commit)

        async def unknown() -> Json | None:
            gate = await incident_gate(cascade, "web")
            return gate if gate and gate["state"] == "unknown" else None

        gate = await eventually(unknown, "the incident gate to be unknown")
        assert gate["reason"].startswith(f"the status page ({FEED_URL}) cannot be read")
        assert gate["reason"].endswith(": HTTP 503")
        assert await cascade.stage_commit("web", "web-prod") != commit

        page.respond(200, json=load(HEROKU_GREEN))
        await eventually(
            lambda: _has(cascade, "web", "web-prod", commit), "the commit to reach web-prod"
        )


async def _has(cascade: Cascade, service: str, app: str, commit: str) -> bool:
    return await cascade.stage_commit(service, app) == commit
