"""The GitHub REST API client: the one door to api.github.com (or GitHub Enterprise).

`app.notify.commit_status` posts `cascade/<stage>` statuses through it,
`app.notify.deployments` makes deployments and posts their statuses; the github view reads
compares, combined statuses and check suites through it (their bodies are read by
`app.signals.github.answers`). Without a token it calls anonymously (public
repositories, 60 calls an hour). Errors come back as `GitHubError` carrying the status and
a message that says what to check, never the token.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from app.signals.github import answers
from app.signals.github.facts import CheckReport, Relation
from app.version import user_agent

ACCEPT = "application/vnd.github+json"
API_VERSION = "2022-11-28"
DESCRIPTION_MAX = 140  # GitHub refuses a longer status description
NO_COMMON_ANCESTOR = "No common ancestor"  # GitHub's 404 for a compare of unrelated histories
T = TypeVar("T")


class GitHubError(Exception):
    """A GitHub call failed: unreachable, or answered with an error status."""

    def __init__(
        self, message: str, status: int | None = None, retry_at: datetime | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_at = retry_at  # a rate limit: not worth asking again before then


class GitHubClient:
    """One connection pool to the GitHub REST API, with the token when there is one."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        headers = {
            "Accept": ACCEPT,
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": user_agent(),
        }
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.anonymous = not token
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers=headers,
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
        path = f"{_repo_path(repo)}/statuses/{quote(sha)}"
        body: dict[str, str] = {
            "state": state,
            "context": context,
            "description": shorten(description),
        }
        if target_url:
            body["target_url"] = target_url
        await self._post(path, body)

    async def create_deployment(
        self,
        repo: str,
        sha: str,
        *,
        environment: str,
        description: str,
        production: bool,
        payload: dict[str, str],
    ) -> int:
        """`POST /repos/{owner}/{repo}/deployments` of `sha` to `environment`: its id.

        Cascade deploys: GitHub must neither merge the default branch in (`auto_merge`)
        nor wait for checks (`required_contexts`), which the github gate judged already.
        """
        path = f"{_repo_path(repo)}/deployments"
        body = {
            "ref": sha,
            "environment": environment,
            "description": shorten(description),
            "auto_merge": False,
            "required_contexts": [],
            "transient_environment": False,
            "production_environment": production,
            "payload": payload,
        }
        response = await self._post(path, body)
        deployment = _json(response).get("id")
        if not isinstance(deployment, int):  # a 202: GitHub merged a branch instead
            raise GitHubError(
                f"GitHub POST {path}: {response.status_code} without a deployment id"
                f" ({_message(response)})",
                response.status_code,
            )
        return deployment

    async def create_deployment_status(
        self,
        repo: str,
        deployment: int,
        *,
        state: str,
        environment: str,
        description: str,
        log_url: str | None = None,
    ) -> None:
        """`POST /repos/{owner}/{repo}/deployments/{id}/statuses`.

        state: in_progress|success|failure (GitHub knows error, inactive, queued, pending too).
        """
        path = f"{_repo_path(repo)}/deployments/{deployment}/statuses"
        body = {"state": state, "environment": environment, "description": shorten(description)}
        if log_url:
            body["log_url"] = log_url
        await self._post(path, body)

    async def compare(self, repo: str, base: str, head: str) -> Relation:
        """`GET /repos/{repo}/compare/{base}...{head}`: how `head` stands to `base`.

        Histories with no common ancestor (GitHub's 404 says so) are diverged.
        """
        path = f"{_repo_path(repo)}/compare/{quote(base, safe='/')}...{quote(head, safe='/')}"
        try:
            body = await self._get(repo, path, {"per_page": "1"})
        except GitHubError as error:
            if error.status == 404 and NO_COMMON_ANCESTOR in str(error):
                return Relation.DIVERGED
            raise
        return _read(answers.relation, body, repo)

    async def statuses(self, repo: str, sha: str) -> list[CheckReport]:
        """`GET /repos/{repo}/commits/{sha}/status`: each context's latest state.

        More contexts than one page holds is an error: the ones left out may be failing.
        """
        path = f"{_repo_path(repo)}/commits/{quote(sha)}/status"
        body = await self._get(repo, path, {"per_page": str(answers.PAGE)})
        return _read(answers.statuses, body, repo, sha)

    async def check_suites(self, repo: str, sha: str) -> list[CheckReport]:
        """`GET /repos/{repo}/commits/{sha}/check-suites`: each suite, pending until completed."""
        path = f"{_repo_path(repo)}/commits/{quote(sha)}/check-suites"
        body = await self._get(repo, path, {"per_page": str(answers.PAGE)})
        return _read(answers.check_suites, body, repo, sha)

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """A write: unreachable or refused is a `GitHubError` with GitHub's message."""
        try:
            response = await self._http.post(path, json=body)
        except httpx.HTTPError as error:
            raise GitHubError(f"GitHub POST {path}: {type(error).__name__}: {error}") from error
        if response.status_code >= 400:
            raise GitHubError(
                f"GitHub POST {path}: {response.status_code} {_message(response)}",
                response.status_code,
            )
        return response

    async def _get(self, repo: str, path: str, params: dict[str, str]) -> Any:
        try:
            response = await self._http.get(path, params=params)
        except httpx.HTTPError as error:
            raise GitHubError(f"GitHub unreachable: {type(error).__name__}: {error}") from error
        if response.status_code >= 400:
            raise self._refusal(repo, response)
        try:
            return response.json()
        except ValueError:
            raise GitHubError(
                f"GitHub answered {path} with something that is not JSON", response.status_code
            ) from None

    def _refusal(self, repo: str, response: httpx.Response) -> GitHubError:
        """A refusal, in words that say what to check."""
        code, message = response.status_code, _message(response)
        reset = response.headers.get("x-ratelimit-reset", "")
        if code in (403, 429) and response.headers.get("x-ratelimit-remaining") == "0":
            at = datetime.fromtimestamp(int(reset), UTC) if reset.isdigit() else None
            until = f" until {at:%H:%M} UTC" if at else ""
            fix = " (set GITHUB_TOKEN: 5000 calls an hour instead of 60)" if self.anonymous else ""
            return GitHubError(f"GitHub's rate limit is used up{until}{fix}", code, at)
        if code == 404 and NO_COMMON_ANCESTOR in message:
            return GitHubError(message, code)
        if code == 404:
            return GitHubError(
                f"GitHub answered 404 for {repo}: check `repo` and GITHUB_TOKEN", code
            )
        if code == 401:
            return GitHubError(
                f"GitHub answered 401 for {repo}: GITHUB_TOKEN is not accepted", code
            )
        if code == 403:
            fix = "set GITHUB_TOKEN" if self.anonymous else "give GITHUB_TOKEN read access to it"
            return GitHubError(f"GitHub answered 403 for {repo} ({message}): {fix}", code)
        return GitHubError(f"GitHub answered {code} for {repo}: {message}", code)


def _read(reader: Callable[..., T], body: Any, *args: str) -> T:
    """`body` read by one of `answers`; an answer not as promised is a `GitHubError`."""
    try:
        return reader(body, *args)
    except ValueError as error:
        raise GitHubError(str(error)) from None


def _repo_path(repo: str) -> str:
    owner, _, name = repo.partition("/")
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


def shorten(text: str, limit: int = DESCRIPTION_MAX) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or an empty one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message", "")) if isinstance(body, dict) else str(body)[:200]
