"""GitHub's answers read into the github signal's values: a compare, statuses, check suites.

Pure: `app.signals.github.client` makes the calls and hands each JSON body here. An answer
that is not what the call promises is a `ValueError` saying what is wrong with it; so is a
list longer than one page, since what was left out might be failing.
"""

from datetime import UTC, datetime
from typing import Any

from app.signals.github.facts import CheckReport, Relation

PAGE = 100  # statuses or check suites read per commit: one page, the most GitHub gives
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # a report without a time: any webhook's is newer


def relation(body: Any, repo: str) -> Relation:
    """`GET /repos/{repo}/compare/{base}...{head}`: how `head` stands to `base`."""
    status = body.get("status") if isinstance(body, dict) else None
    try:
        return Relation(str(status))
    except ValueError:
        raise ValueError(f"GitHub's compare of {repo} has no known status: {status!r}") from None


def statuses(body: Any, repo: str, sha: str) -> list[CheckReport]:
    """`GET /repos/{repo}/commits/{sha}/status`: each context's latest state."""
    items = body.get("statuses") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ValueError(f"GitHub's combined status of {repo}@{sha[:7]} has no statuses list")
    _whole(body, len(items), "statuses", repo, sha)
    return [
        CheckReport(repo, sha, f"status:{context}", context, str(s.get("state")), _at(s))
        for s in items
        if isinstance(s, dict) and (context := str(s.get("context")))
    ]


def check_suites(body: Any, repo: str, sha: str) -> list[CheckReport]:
    """`GET /repos/{repo}/commits/{sha}/check-suites`: each suite, pending until completed.

    A suite with no check run is left out: GitHub makes one for every installed app,
    and it stays queued forever when the app runs no check.
    """
    items = body.get("check_suites") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ValueError(f"GitHub's check suites of {repo}@{sha[:7]} are not a list")
    _whole(body, len(items), "check suites", repo, sha)
    suites: list[CheckReport] = []
    for suite in items:
        if not isinstance(suite, dict) or suite.get("latest_check_runs_count") == 0:
            continue
        app = suite.get("app")
        app = app if isinstance(app, dict) else {}
        name = str(app.get("slug") or app.get("name") or f"check suite {suite.get('id')}")
        state = str(suite.get("conclusion") or suite.get("status") or "pending")
        key = f"suite:{suite.get('id')}"
        suites.append(CheckReport(repo, sha, key, name, state, _at(suite)))
    return suites


def _whole(body: Any, listed: int, what: str, repo: str, sha: str) -> None:
    """Refuse a list cut by the page: what was left out might be failing."""
    total = body.get("total_count") if isinstance(body, dict) else None
    count = max(total if isinstance(total, int) else 0, listed)
    if count > PAGE or count > listed:
        raise ValueError(
            f"GitHub lists {count} {what} on {repo}@{sha[:7]}, more than Cascade reads ({PAGE})"
        )


def _at(item: dict[str, Any]) -> datetime:
    """When GitHub last changed a status or suite."""
    text = item.get("updated_at") or item.get("created_at")
    try:
        return datetime.fromisoformat(str(text)) if text else EPOCH
    except ValueError:
        return EPOCH
