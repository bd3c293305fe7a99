"""Authenticity: forged, replayed, oversized and unauthenticated requests change nothing.

Every sender of `SENDERS` refuses an unsigned delivery, a wrong signature or token, a
signature replayed over a changed body (401) and a body over 1 MiB (413); with its secret
unset it refuses everything. Every write of the API (found in the app's routes, so a new
one is covered without a line here) needs the admin token. Secrets and signatures are
compared with `hmac.compare_digest` only. None of the refusals changes what Cascade knows.
"""

import ast
import hmac
import json
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
import respx
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app.webhooks.auth import MAX_BODY
from tests.factories import refuse_the_platform_token
from tests.figures import Figure, record
from tests.hostile.conftest import SECRETS, Tally, senders
from tests.hostile.senders import SENDERS, Sender, encode, github_hmac, heroku_hmac
from tests.inprocess import ADMIN, ADMIN_TOKEN, Cascade, Json, Start, observed

pytestmark = pytest.mark.reliability
APP = Path(__file__).resolve().parents[2] / "app"
WRITES = ("POST", "PUT", "PATCH", "DELETE")
PLATFORM = "https://platform.invalid"
# Redis keys a background task may touch at any moment, whatever a request does.
VOLATILE = (":lock", ":resynced", ":feeds-polled", ":subscriptions-due", ":dirty", "-tried")


async def state(cascade: Cascade) -> tuple[Any, ...]:
    """What a refused request must leave as it was: /status, /events and every Redis value."""
    shown = await observed(cascade)
    stored = {}
    async with redis.Redis.from_url(cascade_url(cascade)) as raw:  # bytes: DUMP is binary
        for key in sorted(await raw.keys("*")):
            if not any(part.encode() in key for part in VOLATILE):
                stored[key] = await raw.dump(key)
    return shown, stored


def cascade_url(cascade: Cascade) -> str:
    url = cascade.settings.redis_url
    assert url is not None
    return url.get_secret_value()


def first_sample(sender: Sender) -> tuple[bytes, dict[str, str]]:
    name = sorted(sender.samples)[0]
    headers = {"Content-Type": "application/json"}
    if sender.name == "github":
        headers |= {"X-GitHub-Event": name.split("-")[0], "X-GitHub-Delivery": "d-1"}
    return encode(sender.samples[name]), headers


async def post(
    cascade: Cascade,
    sender: Sender,
    body: bytes | AsyncIterator[bytes],
    headers: dict[str, str],
    params: dict[str, str] | None = None,
) -> httpx.Response:
    return await cascade.client.post(sender.path, content=body, headers=headers, params=params)


def forged(sender: Sender, body: bytes) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(what, headers, query) of every way of getting the credentials wrong."""
    secret = SECRETS[sender.setting]
    cases = [("no credentials", {}, {})]
    for way in range(len(sender.ways)):
        for label, wrong in (("wrong secret", "not-" + secret), ("empty secret", "")):
            headers, params = sender.credentials(body, wrong, way)
            cases.append((f"{label} ({sender.ways[way].__name__})", headers, params))
    if sender.setting == "webhook_token":
        cases += [
            ("token as Basic", {"Authorization": f"Basic {secret}"}, {}),
            ("token without scheme", {"Authorization": secret}, {}),
            ("token prefix", {}, {"token": secret[:-1]}),
            ("token with more", {}, {"token": secret + "x"}),
        ]
    else:
        headers, _ = sender.credentials(body, secret)
        (name, value), *_ = headers.items()
        cases += [
            ("signature truncated", {name: value[:-2]}, {}),
            ("signature upper-cased", {name: value.upper()}, {}),
            ("signature in another header", {"X-Signature": value}, {}),
        ]
    return cases


@pytest.mark.parametrize("sender", senders(*SENDERS))
async def test_forged_deliveries_are_401_and_change_nothing(
    hostile: Cascade, sender: Sender, tally: Tally
) -> None:
    body, headers = first_sample(sender)
    before = await state(hostile)
    cases = forged(sender, body)
    for what, credentials, params in cases:
        response = await post(hostile, sender, body, headers | credentials, params)
        assert response.status_code == 401, (what, response.text)
        assert response.json()["detail"], what
    assert await state(hostile) == before
    tally.add(
        Figure(
            area="authenticity",
            check="webhooks: forged credentials",
            cases=len(cases),
            note="unsigned, wrong or empty secret, mangled signature or token: all 401,"
            " Redis unchanged",
        ),
        sender.name,
    )


@pytest.mark.parametrize("sender", senders(*(s for s in SENDERS if s.name in ("heroku", "github"))))
async def test_a_signature_replayed_over_a_changed_body_is_401(
    hostile: Cascade, sender: Sender, tally: Tally
) -> None:
    body, headers = first_sample(sender)
    signed, _ = sender.credentials(body, SECRETS[sender.setting])
    first = await post(hostile, sender, body, headers | signed)
    assert first.status_code in (200, 202), first.text
    before = await state(hostile)
    payload = json.loads(body)
    payload["injected"] = True
    changes = [
        body + b" ",
        b" " + body,
        encode(payload),
        body.replace(b"Hello-World", b"Hello-Worle").replace(b"api-qa", b"api-st"),
        body[:-1],
    ]
    for changed in changes:
        assert changed != body
        response = await post(hostile, sender, changed, headers | signed)
        assert response.status_code == 401, (changed[:100], response.text)
    assert await state(hostile) == before
    tally.add(
        Figure(
            area="authenticity",
            check="webhooks: signature replayed over a changed body",
            cases=len(changes),
            note="a signed delivery accepted, then its signature over a changed body: all 401,"
            " Redis unchanged",
        ),
        sender.name,
    )


@pytest.mark.parametrize("sender", senders(*SENDERS))
async def test_oversized_deliveries_are_413_and_change_nothing(
    hostile: Cascade, sender: Sender, tally: Tally
) -> None:
    body, headers = first_sample(sender)
    big = body + b" " * (MAX_BODY + 1 - len(body))  # still valid JSON, and signed
    before = await state(hostile)

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length to go by
        for _ in range(17):
            yield b" " * 65536

    attempts: list[tuple[str, bytes | AsyncIterator[bytes], dict[str, str]]] = [
        ("signed", big, headers | sender.credentials(big, SECRETS[sender.setting])[0]),
        ("unsigned", big, headers),
        ("streamed", streamed(), headers),
    ]
    for what, content, sent in attempts:
        params = sender.credentials(big, SECRETS[sender.setting])[1]
        response = await post(hostile, sender, content, sent, params)
        assert response.status_code == 413, (what, response.text)
        assert "larger" in response.json()["detail"]
    assert await state(hostile) == before
    tally.add(
        Figure(
            area="authenticity",
            check="webhooks: bodies over 1 MiB",
            cases=len(attempts),
            note="signed, unsigned, streamed without Content-Length: all 413, Redis unchanged",
        ),
        sender.name,
    )


@pytest.mark.parametrize("unset", [None, ""], ids=["unset", "empty"])
@pytest.mark.parametrize("sender", senders(*SENDERS))
async def test_with_its_secret_unset_a_sender_is_refused_everything(
    start: Start,
    services_file: Path,
    sender: Sender,
    unset: str | None,
    stack: ExitStack,
    tally: Tally,
) -> None:
    """Heroku's needs a Platform API token (the sandbox makes a secret of its own when unset)."""
    platform: dict[str, Any] = {}
    if sender.name == "heroku":  # a platform that refuses the token at once, never retried
        platform = {"heroku_api_key": "x", "heroku_api_url": PLATFORM}
        refusing = respx.mock(base_url=PLATFORM, assert_all_called=False)
        refusing.route().respond(401, json={"id": "unauthorized", "message": "Invalid token"})
        stack.enter_context(refusing)
    cascade = await start(
        config_path=services_file, **platform, **(SECRETS | {sender.setting: unset})
    )
    body, headers = first_sample(sender)
    before = await state(cascade)
    tried = 0
    for secret in (SECRETS[sender.setting], "", "x"):
        for way in range(len(sender.ways)):
            credentials, params = sender.credentials(body, secret, way)
            response = await post(cascade, sender, body, headers | credentials, params)
            assert response.status_code == 401, (secret, response.text)
            assert sender.setting_name in response.json()["detail"]
            tried += 1
    assert await state(cascade) == before
    tally.add(
        Figure(
            area="authenticity",
            check="webhooks with their secret unset or empty",
            cases=tried,
            note="every delivery 401 (even signed with the old secret), naming the setting;"
            " Redis unchanged",
        ),
        f"{sender.name} {unset!r}",
    )


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as entered:
        yield entered


# the admin token -------------------------------------------------------------------------

BODIES: dict[str, Json] = {  # a valid body, so that only the credentials are wrong
    "/pause": {"reason": "hostile"},
    "/retry": {"service": "api", "to": "api-st"},
}


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every route of the app, those of included routers too (FastAPI keeps them nested)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)
        elif isinstance(route, APIRoute):
            yield route


def writes(cascade: Cascade) -> list[tuple[str, str]]:
    found = [
        (method, route.path)
        for route in api_routes(cascade.app.routes)
        if not route.path.startswith("/webhooks/")
        for method in sorted(route.methods & set(WRITES))
    ]
    assert ("POST", "/pause") in found  # the list is real
    assert ("POST", "/reload") in found
    return found


async def write(
    cascade: Cascade, method: str, path: str, headers: dict[str, str], body: Json | None = None
) -> httpx.Response:
    content = json.dumps(body if body is not None else BODIES.get(path, {})).encode()
    headers = {"Content-Type": "application/json", **headers}
    return await cascade.client.request(method, path, content=content, headers=headers)


WRONG = {
    "no header": {},
    "wrong token": {"Authorization": "Bearer not-the-token"},
    "empty bearer": {"Authorization": "Bearer "},
    "token as Basic": {"Authorization": f"Basic {ADMIN_TOKEN}"},
    "token without scheme": {"Authorization": ADMIN_TOKEN},
    "token with more": {"Authorization": f"Bearer {ADMIN_TOKEN}x"},
}


async def test_every_write_needs_the_admin_token(hostile: Cascade) -> None:
    before = await state(hostile)
    tried = 0
    for method, path in writes(hostile):
        for what, headers in WRONG.items():
            for body in (None, {"junk": [1, 2]}):  # refused before the body is looked at
                response = await write(hostile, method, path, headers, body)
                assert response.status_code == 401, (method, path, what, response.text)
                assert response.headers["www-authenticate"] == "Bearer"
                tried += 1
    assert await state(hostile) == before
    response = await write(hostile, "POST", "/pause", ADMIN)  # and the right one works
    assert response.status_code == 201, response.text
    record(
        Figure(
            area="authenticity",
            check="every API write without the admin token",
            cases=tried,
            note=f"{len(writes(hostile))} writes found in the app's routes; all 401, Redis"
            " unchanged; with the token, 201",
        )
    )


async def test_with_no_admin_token_every_write_is_403(
    start: Start, services_file: Path, respx_mock: respx.MockRouter
) -> None:
    # outside the sandbox (that Platform API refuses the token): the sandbox makes a token
    platform = {"heroku_api_key": "a-platform-token", "heroku_api_url": "http://127.0.0.1:9"}
    refuse_the_platform_token(respx_mock)  # at once: no retries with back-off
    cascade = await start(config_path=services_file, admin_token=None, **SECRETS, **platform)
    before = await state(cascade)
    tried = 0
    for method, path in writes(cascade):
        for headers in (*WRONG.values(), ADMIN):
            response = await write(cascade, method, path, headers)
            assert response.status_code == 403, (method, path, response.text)
            assert "CASCADE_ADMIN_TOKEN" in response.json()["detail"]
            tried += 1
    assert await state(cascade) == before
    record(
        Figure(
            area="authenticity",
            check="every API write with CASCADE_ADMIN_TOKEN unset",
            cases=tried,
            note="all 403 (the old token too), Redis unchanged",
        )
    )


# constant time ---------------------------------------------------------------------------


async def test_every_credential_is_compared_in_constant_time(
    hostile: Cascade, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each refusal went through `hmac.compare_digest`, with the secret's own bytes."""
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((bytes(a), bytes(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    tried = []
    for sender in SENDERS:
        if sender.path not in {r.path for r in api_routes(hostile.app.routes)}:
            continue
        body, headers = first_sample(sender)
        credentials, params = sender.credentials(body, "not-the-secret")
        compared.clear()
        response = await post(hostile, sender, body, headers | credentials, params)
        assert response.status_code == 401
        secret = SECRETS[sender.setting]
        if sender.setting == "webhook_token":
            expected = secret.encode()
        elif sender.name == "heroku":
            expected = next(iter(heroku_hmac(body, secret)[0].values())).encode()
        else:
            expected = next(iter(github_hmac(body, secret)[0].values())).encode()
        assert any(expected in pair for pair in compared), (sender.name, compared)
        tried.append(sender.name)
    compared.clear()
    response = await write(hostile, "POST", "/pause", {"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert any(ADMIN_TOKEN.encode() in pair for pair in compared), compared
    record(
        Figure(
            area="authenticity",
            check="credentials compared with hmac.compare_digest",
            cases=len(tried) + 1,
            note=f"{', '.join(tried)} and the admin token; no == on a secret in app/ (AST scan)",
        )
    )


SECRET_WORDS = ("secret", "token", "signature", "password", "digest", "hmac", "api_key")


def _names(node: ast.AST) -> set[str]:
    found = set()
    for part in ast.walk(node):
        if isinstance(part, ast.Name):
            found.add(part.id.lower())
        elif isinstance(part, ast.Attribute):
            found.add(part.attr.lower())
        elif isinstance(part, ast.Call) and isinstance(part.func, ast.Attribute):
            found.add(part.func.attr.lower())
    return found


def test_no_secret_is_compared_with_equals() -> None:
    """`==` on a secret leaks its length of common prefix through timing: none in app/."""
    offenders = []
    for path in sorted(APP.rglob("*.py")):
        if "sandbox" in path.parts:  # the simulated Heroku is no credential checker
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Compare) and any(
                isinstance(op, ast.Eq | ast.NotEq) for op in node.ops
            ):
                sides = [node.left, *node.comparators]
                if any(isinstance(s, ast.Constant) and s.value in (None, "") for s in sides):
                    continue
                names = set().union(*(_names(side) for side in sides))
                if any(word in name for name in names for word in SECRET_WORDS):
                    offenders.append(f"{path.relative_to(APP.parent)}:{node.lineno}")
    assert offenders == [], offenders


# bodies of the API -----------------------------------------------------------------------


async def test_every_request_body_is_capped(hostile: Cascade) -> None:
    """Not only the webhooks': no write reads more than 1 MiB of a body (413 past it)."""
    before = await state(hostile)
    big = b'{"reason": "' + b"x" * MAX_BODY + b'"}'

    async def streamed() -> AsyncIterator[bytes]:
        for _ in range(17):
            yield b" " * 65536

    tried = 0
    reading = {  # the writes that take a body: they read it, so they must stop at 1 MiB
        (method, route.path)
        for route in api_routes(hostile.app.routes)
        if route.body_field is not None
        for method in route.methods
    }
    for method, path in writes(hostile):
        for content in (big, streamed()):
            response = await hostile.client.request(method, path, content=content)
            assert response.status_code in (401, 413), (method, path, response.text)
            tried += 1
            if (method, path) in reading:  # sized or streamed, with the token too
                response = await hostile.client.request(
                    method, path, content=big if isinstance(content, bytes) else streamed(),
                    headers=ADMIN,
                )  # fmt: skip
                assert response.status_code == 413, (method, path, response.text)
                assert "larger" in response.json()["detail"]
                tried += 1
    assert {"/pause", "/retry"} <= {path for _, path in reading}
    assert await state(hostile) == before
    record(
        Figure(
            area="limits",
            check="API request bodies over 1 MiB",
            cases=tried,
            note="every write without the token: 401 or 413; those that take a body, with the"
            " token, sized or streamed: 413 once past 1 MiB",
        )
    )
