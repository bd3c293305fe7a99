"""The Librato REST client against respx serving the API samples of tests/fixtures/librato/.

The samples are the librato/api-docs examples (FORMATS.md §4); `GET /v1/alerts/{id}` has no
saved sample, so its answer is the doc's example body, trimmed to the fields read.
"""

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from app.signals.alerts.client import LibratoClient, LibratoError
from tests.conftest import FIXTURES

API = "http://librato.test"
SAMPLES = FIXTURES / "librato"


def sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text())


@pytest.fixture
async def client() -> AsyncIterator[LibratoClient]:
    librato = LibratoClient(API, "ops@example.com", "secret-token")
    yield librato
    await librato.aclose()


async def test_firing_reads_the_status_sample(client: LibratoClient) -> None:
    with respx.mock(base_url=API) as mock:
        route = mock.get("/v1/alerts/status").respond(
            json=sample("librato-api-alerts-status-response.json")
        )
        firing = await client.firing()
    assert firing == {
        "106": datetime.fromtimestamp(1413328283, UTC),
        "129": datetime.fromtimestamp(1444934147, UTC),
    }  # the `cleared` list is not firing
    sent = route.calls.last.request
    basic = base64.b64encode(b"ops@example.com:secret-token").decode()
    assert sent.headers["authorization"] == f"Basic {basic}"


@pytest.mark.parametrize(("index", "triggered"), [(0, True), (1, False)], ids=["triggered", "ok"])
async def test_triggered_reads_the_per_alert_status_samples(
    client: LibratoClient, index: int, triggered: bool
) -> None:
    body = sample("librato-api-alert-id-status-responses.json")[index]
    alert_id = body["alert"]["id"]
    with respx.mock(base_url=API) as mock:
        mock.get(f"/v1/alerts/{alert_id}/status").respond(json=body)
        assert await client.triggered(str(alert_id)) is triggered


async def test_alert_reads_name_and_runbook(client: LibratoClient) -> None:
    body: dict[str, Any] = {
        "id": 123,
        "name": "production.web.frontend.response_time",
        "attributes": {"runbook_url": "http://myco.com/runbooks/response_time"},
        "active": True,
        "version": 2,
    }
    with respx.mock(base_url=API) as mock:
        mock.get("/v1/alerts/123").respond(json=body)
        alert = await client.alert("123")
    assert (alert.name, alert.runbook_url) == (body["name"], body["attributes"]["runbook_url"])


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (httpx.Response(401, json={"errors": {}}), "check LIBRATO_USER and LIBRATO_TOKEN"),
        (httpx.Response(500, text="oops"), "500 oops"),
        (httpx.Response(200, text="<html>"), "an answer of an unexpected shape"),
        (httpx.Response(200, json={"cleared": []}), "an answer of an unexpected shape"),
        (httpx.ConnectError("connection refused"), "ConnectError: connection refused"),
    ],
    ids=["refused", "server-error", "not-json", "no-firing-list", "unreachable"],
)
async def test_errors_say_what_to_check(
    client: LibratoClient, answer: httpx.Response | Exception, says: str
) -> None:
    with respx.mock(base_url=API) as mock:
        route = mock.get("/v1/alerts/status")
        if isinstance(answer, Exception):
            route.side_effect = answer
        else:
            route.return_value = answer
        with pytest.raises(LibratoError) as error:
            await client.firing()
    assert says in str(error.value)
    assert f"{API}/v1/alerts/status" in str(error.value)
    assert "secret-token" not in str(error.value)


async def test_an_alert_id_must_be_a_number(client: LibratoClient) -> None:
    with pytest.raises(LibratoError, match="not a Librato alert id"):
        await client.alert("../users")
