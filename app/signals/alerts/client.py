"""The Librato REST client: the alerts gate's fallback feed, when LIBRATO_USER/TOKEN are set.

`firing()` is one call for every firing alert (`GET /v1/alerts/status`, ids only);
`alert()` names one (`GET /v1/alerts/{id}`); `triggered()` asks one alert's own status
(`GET /v1/alerts/{id}/status`). Auth is HTTP Basic user:token. Errors come back as
`LibratoError` saying what to check, never the token.
"""

from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel

Model = TypeVar("Model", bound=BaseModel)


class LibratoError(Exception):
    """A Librato call failed: unreachable, refused, or an answer of an unexpected shape."""


class _Firing(BaseModel):
    id: int
    triggered_at: int | None = None


class _Status(BaseModel):
    firing: list[_Firing]


class _Attributes(BaseModel):
    runbook_url: str | None = None


class LibratoAlert(BaseModel):
    """The parts of `GET /v1/alerts/{id}` Cascade reads."""

    id: int
    name: str
    attributes: _Attributes | None = None

    @property
    def runbook_url(self) -> str | None:
        return (self.attributes.runbook_url or None) if self.attributes else None


class _Ref(BaseModel):
    id: int


class _AlertStatus(BaseModel):
    alert: _Ref
    status: Literal["triggered", "ok"]


class LibratoClient:
    def __init__(
        self,
        base_url: str,
        user: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 5.0,  # a reconcile may wait on it
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            auth=httpx.BasicAuth(user, token),
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"Accept": "application/json", "User-Agent": "cascade"},
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def firing(self) -> dict[str, datetime | None]:
        """Every firing alert: its id and when it triggered."""
        status = await self._get("/v1/alerts/status", _Status)
        return {
            str(f.id): datetime.fromtimestamp(f.triggered_at, UTC) if f.triggered_at else None
            for f in status.firing
        }

    async def alert(self, alert_id: str) -> LibratoAlert:
        return await self._get(f"/v1/alerts/{_number(alert_id)}", LibratoAlert)

    async def triggered(self, alert_id: str) -> bool:
        status = await self._get(f"/v1/alerts/{_number(alert_id)}/status", _AlertStatus)
        return status.status == "triggered"

    async def _get(self, path: str, model: type[Model]) -> Model:
        where = f"Librato GET {self.base_url}{path}"
        try:
            response = await self._http.get(path)
        except httpx.HTTPError as error:
            raise LibratoError(f"{where}: {type(error).__name__}: {error}") from error
        if response.status_code in (401, 403):
            fix = "check LIBRATO_USER and LIBRATO_TOKEN (a token that may read alerts)"
            raise LibratoError(f"{where}: {response.status_code}: {fix}")
        if response.status_code != 200:
            raise LibratoError(f"{where}: {response.status_code} {_message(response)}".rstrip())
        try:
            return model.model_validate(response.json())
        except ValueError as error:  # not JSON, or a pydantic ValidationError
            why = str(error).replace("\n", " ")[:200]
            raise LibratoError(f"{where}: an answer of an unexpected shape ({why})") from None


def _number(alert_id: str) -> str:
    if not alert_id.isdigit():
        raise LibratoError(f"{alert_id!r} is not a Librato alert id")
    return alert_id


def _message(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("errors", body) if isinstance(body, dict) else body)[:200]
