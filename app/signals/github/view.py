"""The github signal: what pushes and checks webhooks told, and GitHub's REST API behind it.

Webhooks record here (`record_push`, `record_check`). `gather` answers, for each (source,
target) pair of commits: is the source on the branch, how does it stand to the target's
commit, and (with `require_checks`) are its checks green. It reads what pushes proved and
what is cached first; only with `fetch=True` does it ask GitHub, and a call that failed is
not made again for the same thing before `retry` has passed (`poll` when GitHub refused it:
a wrong `repo` or token needs a person, and asking spends the hourly rate limit).
"""

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import redis.asyncio as redis
from redis.asyncio.client import Pipeline

from app.config.services import Service
from app.config.settings import Settings
from app.signals.github.client import GitHubClient, GitHubError
from app.signals.github.facts import (
    CheckReport,
    Checks,
    ChecksState,
    GitHubFacts,
    Push,
    Relation,
    fold,
)
from app.storage import keys

log = logging.getLogger(__name__)

T = TypeVar("T")
READ_TIMEOUT = 5.0  # seconds: a reconcile waits on these calls
MEMORY_MAX = 10_000  # failures and polled checks remembered by this process
UNREAD = "not read from GitHub yet"
CHANGED = "the checks changed since GitHub was last asked; asking again soon"
DEDUP_SECONDS = int(keys.DEDUP_TTL.total_seconds())
WALK_MAX = 50  # fast-forward pushes followed back to order two commits without a call
_LATEST = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old and string.sub(old, 1, 15) > string.sub(ARGV[2], 1, 15) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""  # a report replaces the one of its key unless that one is newer (deliveries may cross)
# KEYS: the repo's generation, the branch's push count, each fact, then the delivery's seen
# mark when there is one; ARGV: the generation the facts are keyed under, their TTL, the
# mark's TTL ("" for no mark), then each fact's value. Answers -1, writing nothing, when the
# mark is there already; else the current generation, having written (mark, count, facts)
# only when it is the one given.
_PUSHED = """
local last = #KEYS
if ARGV[3] ~= '' then
  if redis.call('EXISTS', KEYS[last]) == 1 then return -1 end
  last = last - 1
end
local generation = tonumber(redis.call('GET', KEYS[1]) or '0')
if generation ~= tonumber(ARGV[1]) then return generation end
redis.call('INCR', KEYS[2])
for k = 3, last do redis.call('SET', KEYS[k], ARGV[k + 1], 'EX', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('SET', KEYS[#KEYS], '1', 'EX', ARGV[3]) end
return generation
"""


@dataclass(frozen=True)
class _Read(Generic[T]):
    """One fact: its value, or why it is not known and when to look again."""

    value: T | None
    problem: str | None = None
    recheck_at: datetime | None = None


@dataclass
class _Polled:
    """GitHub's answer on a commit's checks, as reports by key, and what it is good for."""

    until: datetime  # read again after this, unless green
    heard: str  # the digest of the webhook reports on the commit when GitHub was asked
    reports: dict[str, str]  # key -> "<ms>|<state>|<name>", as webhook reports are kept
    read_at: datetime  # when GitHub was asked
    final: bool = False  # green with what webhooks said: kept until a webhook says more


@dataclass(frozen=True)
class _Branch:
    """Where a repository's branch stands in Redis, read once per gather."""

    repo: str
    name: str
    generation: int
    pushes: int


class GitHubView:
    def __init__(
        self,
        client: "redis.Redis",
        github: GitHubClient,
        retry_seconds: float = 10.0,
        poll_seconds: float = 60.0,
    ) -> None:
        self.redis, self.github = client, github
        self.retry, self.poll = timedelta(seconds=retry_seconds), timedelta(seconds=poll_seconds)
        self._failures: dict[Hashable, tuple[datetime, str]] = {}
        self._polled: dict[Hashable, tuple[datetime, _Polled]] = {}  # checks read from the API
        self._latest = client.register_script(_LATEST)
        self._pushed = client.register_script(_PUSHED)
        self._generations: dict[str, int] = {}  # repo -> its generation as last seen here

    @classmethod
    def from_settings(cls, settings: Settings, client: "redis.Redis") -> "GitHubView":
        token = settings.github_token.get_secret_value() if settings.github_token else None
        github = GitHubClient(settings.github_api_url, token, timeout=READ_TIMEOUT)
        return cls(client, github, settings.signal_retry_seconds, settings.poll_seconds)

    # what webhooks record ------------------------------------------------------------------

    async def record_push(self, push: Push, seen: str | None = None) -> bool:
        """The push's commits are on the branch; a forced push voids what was known before.

        `seen` is the delivery's mark: False, and nothing recorded, when it is there already.
        One command for a push that rewrites nothing (a script: a dozen SETs in a pipeline
        cost redis-py a reply each): the mark, the branch's push count (it voids "not on the
        branch") and the facts, written under the generation this process last saw if it is
        still current, else under the one another process counted since (facts of a past
        generation are never read). A rewriting push (rare) takes its mark first, then
        counts the rewrite, and gives the mark back should that fail.
        """
        if not push.rewrites:
            return await self._write_push(push, seen)
        if seen is not None and not await self.redis.set(seen, "1", nx=True, ex=DEDUP_SECONDS):
            return False
        try:
            generation = await self.redis.incr(keys.github_generation(push.repo))
            self._generations[push.repo] = int(generation)
            return await self._write_push(push, None)
        except Exception:
            if seen is not None:
                await self.redis.delete(seen)
            raise

    async def _write_push(self, push: Push, seen: str | None) -> bool:
        repo, branch = push.repo, push.branch
        counters = [keys.github_generation(repo), keys.github_pushes(repo, branch)]
        marks = [seen] if seen is not None else []
        ttl = int(keys.GITHUB_ON_BRANCH_TTL.total_seconds())
        generation = self._generations.get(repo, 0)
        while True:
            facts = _facts_of(push, generation)
            args: list[str | int] = [generation, ttl, DEDUP_SECONDS if marks else ""]
            args += facts.values()
            answer = int(await self._pushed(keys=[*counters, *facts, *marks], args=args))
            if answer < 0:
                return False
            if answer == generation:
                return True
            self._generations[repo] = generation = answer

    async def record_check(self, report: CheckReport) -> bool:
        """Keep the report unless a newer one of its key is there; True when kept (the next
        gather asks GitHub again about the commit)."""
        value = _value(report)
        ttl = int(keys.GITHUB_CHECKS_TTL.total_seconds())
        key = keys.github_checks(report.repo, report.sha)
        return bool(await self._latest(keys=[key], args=[report.key, value, ttl]))

    # what a reconcile reads ----------------------------------------------------------------

    async def gather(
        self,
        service: Service,
        commits: Sequence[tuple[str, str]],
        now: datetime,
        *,
        fetch: bool = True,
        branch_read: Any = None,
    ) -> dict[tuple[str, str], GitHubFacts]:
        """Facts per (source commit, target commit); empty when the service names no repo.

        `branch_read`: the reply to `send_branch_read`, when it was sent already."""
        if not service.repo or not commits:
            return {}
        if branch_read is None:
            branch_read = await self.redis.mget(*_branch_keys(service.repo, service.branch))
        generation, pushes = branch_read
        branch = _Branch(service.repo, service.branch, int(generation or 0), int(pushes or 0))
        pairs = sorted(set(commits))
        sources = sorted({source for source, _ in pairs})
        marks = await self._branch_marks(branch, sources)  # one read for every source
        found = await asyncio.gather(
            *(self._on_branch(branch, s, marks[s], now, fetch) for s in sources)
        )
        on = dict(zip(sources, found, strict=True))
        relations = await asyncio.gather(
            *(self._relation(branch, s, t, now, fetch) for s, t in pairs if on[s].value)
        )
        relation = dict(zip([p for p in pairs if on[p[0]].value], relations, strict=True))
        checked = sorted(
            {s for (s, t), r in relation.items() if r.value and r.value.contains_base}
            if service.require_checks
            else set()
        )
        checks = dict(
            zip(
                checked,
                await asyncio.gather(*(self._checks(branch.repo, s, now, fetch) for s in checked)),
                strict=True,
            )
        )
        unasked: _Read[Any] = _Read(None)
        return {
            (s, t): _facts(on[s], relation.get((s, t), unasked), checks.get(s, unasked))
            for s, t in pairs
        }

    @staticmethod
    def send_branch_read(pipe: Pipeline, repo: str, branch: str) -> None:
        """Queue where the branch stands (its generation, its push count), for `gather`."""
        pipe.mget(*_branch_keys(repo, branch))

    async def _branch_marks(
        self, branch: _Branch, shas: Sequence[str]
    ) -> dict[str, tuple[Any, Any]]:
        """Each commit's "on the branch" and "not on the branch" marks, in one MGET."""
        repo, name, generation = branch.repo, branch.name, branch.generation
        wanted = [
            key
            for sha in shas
            for key in (
                keys.github_on_branch(repo, generation, name, sha),
                keys.github_off_branch(repo, generation, name, sha),
            )
        ]
        found = await self.redis.mget(wanted)
        return {sha: (found[2 * i], found[2 * i + 1]) for i, sha in enumerate(shas)}

    async def _on_branch(
        self, branch: _Branch, sha: str, marks: tuple[Any, Any], now: datetime, fetch: bool
    ) -> _Read[bool]:
        """Pushes listed it, or GitHub's compare of `sha...branch` finds the branch contains it."""
        repo, name, generation = branch.repo, branch.name, branch.generation
        on_key = keys.github_on_branch(repo, generation, name, sha)
        off_key = keys.github_off_branch(repo, generation, name, sha)
        on, off = marks
        if on is not None:
            return _Read(True)
        if _still_off(off, branch.pushes, now, fresh=fetch):
            return _Read(False)
        read = await self._call(
            ("branch", repo.lower(), name, sha),
            now,
            fetch,
            lambda: self.github.compare(repo, sha, name),
        )
        if read.value is None:
            return _Read(None, read.problem, read.recheck_at)
        if read.value.contains_base:
            await self.redis.set(on_key, "1", ex=keys.GITHUB_ON_BRANCH_TTL)
            return _Read(True)
        off = f"{branch.pushes}|{now.timestamp():.0f}"
        await self.redis.set(off_key, off, ex=keys.GITHUB_OFF_BRANCH_TTL)
        return _Read(False)

    async def _relation(
        self, branch: _Branch, source: str, target: str, now: datetime, fetch: bool
    ) -> _Read[Relation]:
        """How `source` stands to `target`: from the pushes, the cache, or GitHub's compare."""
        if source == target:
            return _Read(Relation.IDENTICAL)
        key = keys.github_compare(branch.repo, branch.generation, target, source)
        cached = await self.redis.get(key)
        if cached is not None:
            return _Read(Relation(_text(cached)))
        if await self._descends(branch, source, target):
            return _Read(Relation.AHEAD)
        if await self._descends(branch, target, source):
            return _Read(Relation.BEHIND)
        read = await self._call(
            ("compare", branch.repo.lower(), target, source),
            now,
            fetch,
            lambda: self.github.compare(branch.repo, target, source),
        )
        if read.value is not None:
            await self.redis.set(key, read.value.value, ex=keys.GITHUB_COMPARE_TTL)
        return read

    async def _descends(self, branch: _Branch, sha: str, ancestor: str) -> bool:
        """True when recorded fast-forward pushes lead from `ancestor` to `sha`."""
        for _ in range(WALK_MAX):
            parent = await self.redis.get(
                keys.github_parent(branch.repo, branch.generation, branch.name, sha)
            )
            if parent is None:
                return False
            sha = _text(parent)
            if sha == ancestor:
                return True
        return False

    async def _checks(self, repo: str, sha: str, now: datetime, fetch: bool) -> _Read[Checks]:
        """Every status and check suite GitHub knows on `sha`, with what webhooks said since.

        GitHub's answer is kept while nothing can change it: no webhook reported on the
        commit since it was read, and it was green (else it is read again after `poll`:
        without webhooks nothing says when pending checks end). A webhook on the commit
        makes the next gather ask again: repository webhooks bring a suite only once it
        completes, so one green suite says nothing of the others.
        """
        recorded = await self.redis.hgetall(keys.github_checks(repo, sha))
        reports = {_text(k): _text(v) for k, v in recorded.items()}
        heard = _digest(reports)
        where = (repo.lower(), sha)
        polled = self._polled.get(where, (now, None))[1]
        current = polled is not None and polled.heard == heard
        if polled is not None and not current and fetch and polled.read_at + self.retry > now:
            # at most one read per commit per retry interval, however many deliveries come
            return _Read(None, CHANGED, polled.read_at + self.retry)
        if polled is None or (fetch and not (current and (polled.final or polled.until > now))):
            read = await self._call(
                ("checks", *where), now, fetch, lambda: self._read_checks(repo, sha)
            )
            if read.value is None:
                return _Read(None, read.problem, read.recheck_at)
            polled = _Polled(now + self.poll, heard, read.value, now)
            _remember(self._polled, where, (polled.until, polled), now)
        elif not current:
            return _Read(None, CHANGED)
        checks = _fold_latest(polled.reports, reports)
        polled.final = checks.state is ChecksState.SUCCESS
        return _Read(checks, None, None if polled.final else polled.until)

    async def _read_checks(self, repo: str, sha: str) -> dict[str, str]:
        statuses, suites = await asyncio.gather(
            self.github.statuses(repo, sha), self.github.check_suites(repo, sha)
        )
        return {r.key: _value(r) for r in (*statuses, *suites)}

    async def _call(
        self,
        what: Hashable,
        now: datetime,
        fetch: bool,
        call: Callable[[], Awaitable[T]],
    ) -> _Read[T]:
        """Ask GitHub, unless a failure of the same call is recent or fetching is not allowed."""
        failed = self._failures.get(what)
        if failed is not None and (failed[0] > now or not fetch):
            return _Read(None, failed[1], failed[0] if failed[0] > now else None)
        if not fetch:
            return _Read(None, UNREAD)
        try:
            value = await call()
        except GitHubError as error:
            # Unreachable or failing: soon again. Refused (404, 401…): a person must act first.
            refused = error.status is not None and error.status < 500
            until = max(
                now + (max(self.retry, self.poll) if refused else self.retry), error.retry_at or now
            )
            _remember(self._failures, what, (until, str(error)), now)
            log.warning("github: %s", error)
            return _Read(None, str(error), until)
        self._failures.pop(what, None)
        return _Read(value)

    async def aclose(self) -> None:
        await self.github.aclose()


def _facts(on: _Read[bool], relation: _Read[Relation], checks: _Read[Checks]) -> GitHubFacts:
    reads: tuple[_Read[Any], ...] = (on, relation, checks)
    problem = next((r.problem for r in reads if r.value is None and r.problem), None)
    recheck_at = min((r.recheck_at for r in reads if r.recheck_at is not None), default=None)
    return GitHubFacts(on.value, relation.value, checks.value, problem, recheck_at)


def _value(report: CheckReport) -> str:
    """A report as kept: `<ms, 15 digits>|<state>|<name>`, so that newer sorts later."""
    at = max(0, round(report.at.timestamp() * 1000))
    return f"{at:015d}|{report.state}|{report.name}"


def _digest(reports: dict[str, str]) -> str:
    """What the webhooks reported on a commit, in a few bytes: it changes with any report."""
    text = "\n".join(f"{k}={v}" for k, v in sorted(reports.items()))
    return hashlib.sha256(text.encode()).hexdigest()


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


def _still_off(off: bytes | str | None, pushes: int, now: datetime, *, fresh: bool) -> bool:
    """A "not on the branch" no push came after; to decide (`fresh`), only a recent one."""
    if off is None:
        return False
    number, _, at = _text(off).partition("|")
    if number != str(pushes):
        return False
    return (
        not fresh or now.timestamp() - float(at or 0) < keys.GITHUB_OFF_BRANCH_FRESH.total_seconds()
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _remember(
    memory: dict[Hashable, tuple[datetime, T]],
    key: Hashable,
    value: tuple[datetime, T],
    now: datetime,
) -> None:
    """Bounded: past entries go first, then the oldest."""
    if len(memory) >= MEMORY_MAX:
        for stale in [k for k, (until, _v) in memory.items() if until <= now]:
            del memory[stale]
        while len(memory) >= MEMORY_MAX:
            del memory[next(iter(memory))]
    memory[key] = value


def _branch_keys(repo: str, branch: str) -> tuple[str, str]:
    return keys.github_generation(repo), keys.github_pushes(repo, branch)


def _facts_of(push: Push, generation: int) -> dict[str, str]:
    """What `push` proves, key by key: its commits are on the branch, `before` precedes
    `after`."""
    if push.after is None:
        return {}
    repo, branch = push.repo, push.branch
    facts = {
        keys.github_on_branch(repo, generation, branch, sha): "1" for sha in sorted(push.on_branch)
    }
    if push.before and not push.forced:  # a fast-forward: `before` is an ancestor
        facts[keys.github_parent(repo, generation, branch, push.after)] = push.before
    return facts
