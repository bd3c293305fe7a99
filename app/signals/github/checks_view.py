"""The github view's checks: what check webhooks reported on a commit, and GitHub's answer.

Webhooks record each status context or check suite (`record_check`), a newer report of a
key replacing an older one (deliveries may cross). A gather folds GitHub's answer with
the reports that came since (`read`); GitHub is asked again only when a report came, or
the answer was not green and `poll` has passed.
"""

import asyncio
import hashlib
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime

from app.signals.github.calls import Calls, Read, remember, text
from app.signals.github.facts import CheckReport, Checks, ChecksState, fold
from app.storage import keys
from app.storage.client import Client

CHANGED = "the checks changed since GitHub was last asked; asking again soon"
# A report replaces the one of its key unless that one is newer (deliveries may cross).
_LATEST = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and string.sub(old, 1, 15) > string.sub(ARGV[2], 1, 15) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


@dataclass
class _Polled:
    """GitHub's answer on a commit's checks, as reports by key, and what it is good for."""

    until: datetime  # read again after this, unless green
    heard: str  # the digest of the webhook reports on the commit when GitHub was asked
    reports: dict[str, str]  # key -> "<ms>|<state>|<name>", as webhook reports are kept
    read_at: datetime  # when GitHub was asked
    final: bool = False  # green with what webhooks said: kept until a webhook says more


class ChecksView:
    def __init__(self, client: Client, calls: Calls) -> None:
        self.redis, self.calls = client, calls
        self._polled: dict[Hashable, tuple[datetime, _Polled]] = {}  # checks read from the API
        self._latest = client.register_script(_LATEST)

    async def record_check(self, report: CheckReport) -> bool:
        """Keep the report unless a newer one of its key is there; True when kept (the next
        gather asks GitHub again about the commit)."""
        value = _value(report)
        ttl = int(keys.GITHUB_CHECKS_TTL.total_seconds())
        key = keys.github_checks(report.repo, report.sha)
        return bool(await self._latest(keys=[key], args=[report.key, value, ttl]))

    async def read(self, repo: str, sha: str, now: datetime, fetch: bool) -> Read[Checks]:
        """Every status and check suite GitHub knows on `sha`, with what webhooks said since.

        GitHub's answer is kept while nothing can change it: no webhook reported on the
        commit since it was read, and it was green (else it is read again after `poll`:
        without webhooks nothing says when pending checks end). A webhook on the commit
        makes the next gather ask again: repository webhooks bring a suite only once it
        completes, so one green suite says nothing of the others.
        """
        retry, poll = self.calls.retry, self.calls.poll
        recorded = await self.redis.hgetall(keys.github_checks(repo, sha))
        reports = {text(k): text(v) for k, v in recorded.items()}
        heard = _digest(reports)
        where = (repo.lower(), sha)
        polled = self._polled.get(where, (now, None))[1]
        current = polled is not None and polled.heard == heard
        if polled is not None and not current and fetch and polled.read_at + retry > now:
            # at most one read per commit per retry interval, however many deliveries come
            return Read(None, CHANGED, polled.read_at + retry)
        if polled is None or (fetch and not (current and (polled.final or polled.until > now))):
            read = await self.calls.ask(
                ("checks", *where), now, fetch, lambda: self._from_github(repo, sha)
            )
            if read.value is None:
                return Read(None, read.problem, read.recheck_at)
            polled = _Polled(now + poll, heard, read.value, now)
            remember(self._polled, where, (polled.until, polled), now)
        elif not current:
            return Read(None, CHANGED)
        checks = _fold_latest(polled.reports, reports)
        polled.final = checks.state is ChecksState.SUCCESS
        return Read(checks, None, None if polled.final else polled.until)

    async def _from_github(self, repo: str, sha: str) -> dict[str, str]:
        github = self.calls.github
        statuses, suites = await asyncio.gather(
            github.statuses(repo, sha), github.check_suites(repo, sha)
        )
        return {r.key: _value(r) for r in (*statuses, *suites)}


def _value(report: CheckReport) -> str:
    """A report as kept: `<ms, 15 digits>|<state>|<name>`, so that newer sorts later."""
    at = max(0, round(report.at.timestamp() * 1000))
    return f"{at:015d}|{report.state}|{report.name}"


def _digest(reports: dict[str, str]) -> str:
    """What the webhooks reported on a commit, in a few bytes: it changes with any report."""
    joined = "\n".join(f"{k}={v}" for k, v in sorted(reports.items()))
    return hashlib.sha256(joined.encode()).hexdigest()


def _fold_latest(api: dict[str, str], hooks: dict[str, str]) -> Checks:
    """GitHub's answer, each report replaced by a webhook's newer one of the same key."""
    latest = dict(api)
    for key, value in hooks.items():
        if key not in latest or value[:15] > latest[key][:15]:
            latest[key] = value
    return _fold_recorded(latest)


def _fold_recorded(recorded: dict[str, str]) -> Checks:
    statuses: dict[str, str] = {}
    suites: list[tuple[str, str | None]] = []
    for key, value in recorded.items():
        _at, state, name = [*value.split("|", 2), "", ""][:3]
        if key.startswith("status:"):
            statuses[name] = state
        else:
            suites.append((name, state or None))
    return fold(statuses, suites)
