"""Talking to a running Cascade: one request to `CASCADE_URL`, a refusal said plainly.

Writes send `CASCADE_ADMIN_TOKEN` (or, on the machine that runs the sandbox, the token it
keeps); a refusal or an unreachable Cascade becomes a `ClientError` whose message says what
to do, and whose code is the command's exit code.
"""

from typing import Any

import httpx

from app.config import admin_token
from app.config.settings import get_settings

UNREACHABLE, REFUSED = 2, 1  # exit codes
TIMEOUT_SECONDS = 10.0


class ClientError(Exception):
    """A client command could not do its job; the message says what to do about it."""

    def __init__(self, message: str, code: int = REFUSED) -> None:
        super().__init__(message)
        self.code = code


def call(method: str, path: str, *, write: bool = False, **kwargs: Any) -> Any:
    """One request to the running Cascade; a refusal becomes a `ClientError` that says why."""
    settings = get_settings()
    url = settings.client_url.rstrip("/")
    token = settings.admin_token or admin_token.for_client(url, settings.data_dir)
    headers = {}
    if write and token is not None:
        headers["Authorization"] = f"Bearer {token.get_secret_value()}"
    try:
        response = httpx.request(
            method, url + path, headers=headers, timeout=TIMEOUT_SECONDS, **kwargs
        )
    except httpx.TimeoutException:
        raise ClientError(
            f"Cascade at {url} did not answer within {TIMEOUT_SECONDS:.0f}s", UNREACHABLE
        ) from None
    except httpx.HTTPError as error:
        reason = str(error) or type(error).__name__
        raise ClientError(
            f"cannot reach Cascade at {url} ({reason}): is it running? CASCADE_URL says where",
            UNREACHABLE,
        ) from None
    if response.status_code >= 400:
        raise ClientError(_refusal(response, url, write and token is not None))
    try:
        return response.json() if response.content else None
    except ValueError:
        raise ClientError(
            f"{url} answered {path} with something other than JSON: is it Cascade?"
        ) from None


def _refusal(response: httpx.Response, url: str, sent_token: bool) -> str:
    detail = _detail(response)
    if response.status_code == 401:
        fix = (
            "CASCADE_ADMIN_TOKEN here does not match the one Cascade runs with"
            if sent_token
            else "set CASCADE_ADMIN_TOKEN to the admin token Cascade runs with"
        )
        return f"Cascade at {url} refused: missing or wrong admin token (401): {fix}"
    if response.status_code == 403:
        return f"Cascade at {url} refused (403): {detail}"
    return (
        f"{response.request.method} {response.request.url.path}: {response.status_code}: {detail}"
    )


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
        detail = body.get("detail") or body.get("message")  # Cascade's, or another service's
    except (ValueError, AttributeError):
        detail = None
    if not detail:
        return response.text.strip()[:200] or response.reason_phrase
    if isinstance(detail, list):  # FastAPI's validation errors
        return "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail
        )
    return str(detail)
