"""What every webhook endpoint checks first, in order: size (413), authenticity (401), JSON (400).

Comparisons are constant-time; an unset secret refuses every delivery.
"""

import base64
import hashlib
import hmac
import json
import urllib.parse
from typing import Any

from fastapi import HTTPException, Request, status
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.bearer import matches

MAX_BODY = 1024 * 1024


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The raw body, refused with 413 past `limit` without reading it all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


class BodyLimit:
    """ASGI middleware: every request body, not only a webhook's, is capped at `limit`.

    Reading past it raises the 413 of `read_body`, through the route (a webhook counts and
    logs it as any refusal), so no route ever buffers more than `limit` bytes of a body.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        size = 0

        async def capped() -> Message:
            nonlocal size
            message = await receive()
            size += len(message.get("body", b""))
            if size > self.limit:
                raise _too_large(self.limit)  # answered 413 by the app's HTTPException handler
            return message

        await self.app(scope, capped, send)


def require_secret(secret: SecretStr | None, setting: str) -> bytes:
    if secret is None or not secret.get_secret_value():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"{setting} is not set, so Cascade refuses every delivery here: set it to the"
            " secret the sender signs with",
        )
    return secret.get_secret_value().encode()


def verify_base64_hmac(secret: bytes, body: bytes, given: str | None, header: str) -> None:
    """Heroku's form: base64 of HMAC-SHA256 over the raw body."""
    expected = base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()
    _compare(expected, given, header)


def verify_hex_hmac(secret: bytes, body: bytes, given: str | None, header: str) -> None:
    """GitHub's form: `sha256=` and the hex HMAC-SHA256 over the raw body."""
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    _compare(expected, given, header)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"body is not valid JSON: {error}"
        ) from None
    except RecursionError:  # `[[[[…` within 1 MiB nests deeper than Python's parser recurses
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "body is not valid JSON: nested too deeply"
        ) from None


FORM = "application/x-www-form-urlencoded"


def json_of_form(body: bytes, content_type: str | None) -> bytes:
    """The JSON a delivery carries: the body itself, or, for a form (GitHub's default content
    type), its `payload` field. Call it after the signature is checked over the raw body."""
    if (content_type or "").split(";")[0].strip().lower() != FORM:
        return body
    try:
        fields = urllib.parse.parse_qs(body.decode("ascii"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as error:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"body is not a valid form: {error}"
        ) from None
    payload = fields.get("payload")
    if not payload or len(payload) != 1:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "a form-encoded delivery needs one `payload` field"
        )
    return payload[0].encode()


def _compare(expected: str, given: str | None, header: str) -> None:
    if not given:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"the {header} header is missing")
    if not matches(given.strip(), expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"the {header} signature does not match the body: check that the secret configured"
            " in Cascade is the one the sender signs with",
        )


def _too_large(limit: int) -> HTTPException:
    return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"body is larger than {limit} bytes")
