"""The GitHub REST API client: the one door to api.github.com (or GitHub Enterprise).

`app.commit_status` posts `cascade/<stage>` statuses through it. Errors come back as
`GitHubError` carrying the status and GitHub's message, never the token.
"""

from importlib.metadata import PackageNotFoundError, version
from urllib.parse import quote

import httpx

ACCEPT = "application/vnd.github+json"
API_VERSION = "2022-11-28"
DESCRIPTION_MAX = 140  # GitHub refuses a longer status description


class GitHubError(Exception):
    """A GitHub call failed: unreachable, or answered with an error status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _user_agent() -> str:
    try:
        return f"cascade/{version('cascade')}"
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "cascade"


class GitHubClient:
    """One authenticated connection pool to the GitHub REST API."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={
                "Accept": ACCEPT,
                "Authorization": f"Bearer {token}",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": _user_agent(),
            },
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def create_status(
        self,
        repo: str,
        sha: str,
        *,
        state: str,
        context: str,
        description: str,
        target_url: str | None = None,
    ) -> None:
        """`POST /repos/{owner}/{repo}/statuses/{sha}`; state: pending|success|failure|error."""
        owner, _, name = repo.partition("/")
        path = f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}/statuses/{quote(sha)}"
        body: dict[str, str] = {
            "state": state,
            "context": context,
            "description": shorten(description),
        }
        if target_url:
            body["target_url"] = target_url
        try:
            response = await self._http.post(path, json=body)
        except httpx.HTTPError as error:
            raise GitHubError(f"GitHub POST {path}: {type(error).__name__}: {error}") from error
        if response.status_code >= 400:
            raise GitHubError(
                f"GitHub POST {path}: {response.status_code} {_message(response)}",
                response.status_code,
            )


def shorten(text: str, limit: int = DESCRIPTION_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message", "")) if isinstance(body, dict) else str(body)[:200]
