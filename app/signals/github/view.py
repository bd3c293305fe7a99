"""The github signal: what pushes and checks webhooks told, and GitHub's REST API behind it.

Webhooks record here (`record_push` into the branch view, `record_check` into the checks
view). `gather` answers, for each (source, target) pair of commits: is the source on the
branch, how does it stand to the target's commit, and (with `require_checks`) are its
checks green. It reads what pushes proved and what is cached first; only with `fetch=True`
does it ask GitHub, and never again too soon after a failure (`calls.Calls`).
"""

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from app.config.services import Service
from app.config.settings import Settings
from app.signals.github.branch_view import Branch, BranchView
from app.signals.github.calls import Calls, Read
from app.signals.github.checks_view import ChecksView
from app.signals.github.client import GitHubClient
from app.signals.github.facts import CheckReport, Checks, GitHubFacts, Push, Relation
from app.storage.batch import Batch, Reply
from app.storage.client import Client

READ_TIMEOUT = 5.0  # seconds: a reconcile waits on these calls


class GitHubView:
    def __init__(
        self,
        client: Client,
        github: GitHubClient,
        retry_seconds: float = 10.0,
        poll_seconds: float = 60.0,
    ) -> None:
        self.github = github
        calls = Calls(github, timedelta(seconds=retry_seconds), timedelta(seconds=poll_seconds))
        self.branches, self.checks = BranchView(client, calls), ChecksView(client, calls)

    @classmethod
    def from_settings(cls, settings: Settings, client: Client) -> "GitHubView":
        token = settings.github_token.get_secret_value() if settings.github_token else None
        github = GitHubClient(settings.github_api_url, token, timeout=READ_TIMEOUT)
        return cls(client, github, settings.signal_retry_seconds, settings.poll_seconds)

    async def record_push(self, push: Push, seen: str | None = None) -> bool:
        """The push's commits are on the branch (`BranchView.record_push`); False when `seen`,
        the delivery's mark, is there already."""
        return await self.branches.record_push(push, seen)

    async def record_check(self, report: CheckReport) -> bool:
        """Keep the report unless a newer one of its key is there; True when kept."""
        return await self.checks.record_check(report)

    async def gather(
        self,
        service: Service,
        commits: Sequence[tuple[str, str]],
        now: datetime,
        *,
        fetch: bool = True,
        branch: Branch | None = None,
    ) -> dict[tuple[str, str], GitHubFacts]:
        """Facts per (source commit, target commit); empty when the service names no repo.

        `branch`: where the branch stands, when `send_branch_read` read it already."""
        if not service.repo or not commits:
            return {}
        if branch is None:
            branch = await self.branches.where(service.repo, service.branch)
        pairs = sorted(set(commits))
        on = await self.branches.on_branch(branch, sorted({s for s, _ in pairs}), now, fetch)
        moving = [(s, t) for s, t in pairs if on[s].value]
        relations = await asyncio.gather(
            *(self.branches.relation(branch, s, t, now, fetch) for s, t in moving)
        )
        relation = dict(zip(moving, relations, strict=True))
        checked = sorted(
            {s for (s, t), r in relation.items() if r.value and r.value.contains_base}
            if service.require_checks
            else set()
        )
        found = await asyncio.gather(
            *(self.checks.read(branch.repo, s, now, fetch) for s in checked)
        )
        checks = dict(zip(checked, found, strict=True))
        unasked: Read[Any] = Read(None)
        return {
            (s, t): _facts(on[s], relation.get((s, t), unasked), checks.get(s, unasked))
            for s, t in pairs
        }

    @staticmethod
    def send_branch_read(batch: Batch, repo: str, branch: str) -> Reply[Branch]:
        """Where the branch stands (its generation, its push count), for `gather`, in `batch`."""
        return BranchView.send_read(batch, repo, branch)

    async def aclose(self) -> None:
        await self.github.aclose()


def _facts(on: Read[bool], relation: Read[Relation], checks: Read[Checks]) -> GitHubFacts:
    reads: tuple[Read[Any], ...] = (on, relation, checks)
    problem = next((r.problem for r in reads if r.value is None and r.problem), None)
    recheck_at = min((r.recheck_at for r in reads if r.recheck_at is not None), default=None)
    return GitHubFacts(on.value, relation.value, checks.value, problem, recheck_at)
