"""Schemathesis against the running service: every operation of its OpenAPI document.

Cascade runs as `uvicorn app.main:app` (its embedded Redis, the sandbox platform) and
Schemathesis sends each operation of the document it serves inputs that fit the schema
and inputs that break it, once without credentials and once with them (the admin token;
for a webhook, a correct signature or the shared token). No answer may be a 5xx, use a
status code the document does not list, or break the documented response schema or
content type. Not covered, because the document does not describe them:
`/dashboard/stream` (an endless Server-Sent Events stream) and `/static/*` (the
dashboard's files); both are left out of the schema (`include_in_schema=False`).
"""

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from app.config.settings import Settings
from app.main import create_app
from tests.e2e.harness import Process
from tests.figures import Figure, record
from tests.hostile.conftest import EXAMPLES, SECRETS, cascade_process
from tests.hostile.senders import SENDERS, SERVICES
from tests.inprocess import ADMIN_TOKEN

pytestmark = pytest.mark.reliability
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]
PER_OPERATION = max(10, EXAMPLES // 2)  # examples per operation and credentials
OPERATIONS = [
    (method.upper(), path)
    for path, methods in create_app(Settings(_env_file=None)).openapi()["paths"].items()
    for method in methods
]
CREDENTIALS = ("none", "credentials")
Tally = dict[str, Counter[str]]  # cases by operation, answers by status


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    tmp = tmp_path_factory.mktemp("openapi")
    config = tmp / "cascade.toml"
    config.write_text(SERVICES)
    process = cascade_process(
        tmp,
        CASCADE_CONFIG=str(config),
        CASCADE_ADMIN_TOKEN=ADMIN_TOKEN,
        HEROKU_WEBHOOK_SECRET=SECRETS["heroku_webhook_secret"],
        GITHUB_WEBHOOK_SECRET=SECRETS["github_webhook_secret"],
        CASCADE_WEBHOOK_TOKEN=SECRETS["webhook_token"],
    )
    yield process.start()
    process.stop()


@pytest.fixture(scope="module")
def schema(service: Process) -> Any:
    return schemathesis.openapi.from_url(service.url + "/openapi.json")


@pytest.fixture(scope="module")
def answers() -> Iterator[Tally]:
    """Cases and answers of the whole module, recorded as one figure at its end."""
    counts: Tally = {"cases": Counter(), "statuses": Counter()}
    yield counts
    statuses = counts["statuses"]
    five_xx = sum(n for status, n in statuses.items() if status.startswith("5"))
    record(
        Figure(
            area="hostile input",
            check="schemathesis: every operation of /openapi.json",
            cases=sum(counts["cases"].values()),
            five_xx=five_xx,
            note=(
                f"{len(counts['cases'])} (operation, credentials) pairs against the running"
                f" service; schema-valid and schema-breaking inputs; answers "
                + ", ".join(f"{n} x {s}" for s, n in sorted(statuses.items()))
            ),
        )
    )


def credentials(method: str, path: str, body: bytes) -> dict[str, str]:
    """The admin token, or what the webhook sender of `path` would send for `body`."""
    for sender in SENDERS:
        if sender.path == path:
            headers, params = sender.credentials(body, SECRETS[sender.setting])
            if params:  # the token senders: the same token as a bearer
                headers = {"Authorization": f"Bearer {params['token']}"}
            return headers
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.mark.parametrize("with_credentials", CREDENTIALS)
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_operation(
    service: Process, schema: Any, answers: Tally, method: str, path: str, with_credentials: str
) -> None:
    operation = schema[path][method]
    strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(
        GenerationMode.NEGATIVE
    )
    session = requests.Session()
    label = f"{method} {path} ({with_credentials})"

    @settings(
        settings.get_profile("hostile"),
        max_examples=PER_OPERATION,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def call(case: Any) -> None:
        headers = {}
        if with_credentials == "credentials":
            body = b""  # the webhooks declare no body: Schemathesis sends none
            headers = credentials(method, path, body)
        response = case.call(base_url=service.url, session=session, headers=headers, timeout=30)
        answers["cases"][label] += 1
        answers["statuses"][str(response.status_code)] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    try:
        call()
    finally:
        session.close()
    assert answers["cases"][label] > 0
    output = Path(service.log).read_text(errors="replace")
    assert "Traceback" not in output, output[-5000:]
