"""The github view's branches: which commits are on a branch, and how two commits stand.

Push webhooks record what they prove (`record_push`): their commits are on the branch, and
a fast-forward's `before` precedes its `after`. A forced push or a deletion voids all that
was known of the repository (its generation counts up; facts of a past generation are
never read). A gather reads these first, then its own cached compares, and asks GitHub's
compare only for the rest.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.signals.github.calls import Calls, Read, text
from app.signals.github.facts import Push, Relation
from app.storage import keys
from app.storage.batch import Batch, Reply
from app.storage.client import Client, mget

DEDUP_SECONDS = int(keys.DEDUP_TTL.total_seconds())
WALK_MAX = 50  # fast-forward pushes followed back to order two commits without a call
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
class Branch:
    """Where a repository's branch stands in Redis, read once per gather."""

    repo: str
    name: str
    generation: int
    pushes: int


class BranchView:
    def __init__(self, client: Client, calls: Calls) -> None:
        self.redis, self.calls = client, calls
        self._pushed = client.register_script(_PUSHED)
        self._generations: dict[str, int] = {}  # repo -> its generation as last seen here

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

    @staticmethod
    def send_read(batch: Batch, repo: str, branch: str) -> Reply[Branch]:
        """Where the branch stands (its generation, its push count), read in `batch`."""
        return batch.add(
            lambda pipe: mget(pipe, _branch_keys(repo, branch)),
            lambda replies: _branch(repo, branch, replies[0]),
        )

    async def where(self, repo: str, name: str) -> Branch:
        """Where the branch stands, in a round trip of its own."""
        return _branch(repo, name, await self.redis.mget(*_branch_keys(repo, name)))

    async def on_branch(
        self, branch: Branch, shas: Sequence[str], now: datetime, fetch: bool
    ) -> dict[str, Read[bool]]:
        """Whether each commit is on the branch: one read of the marks for all of them."""
        marks = await self._marks(branch, shas)
        found = await asyncio.gather(*(self._on(branch, s, marks[s], now, fetch) for s in shas))
        return dict(zip(shas, found, strict=True))

    async def _marks(self, branch: Branch, shas: Sequence[str]) -> dict[str, tuple[Any, Any]]:
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

    async def _on(
        self, branch: Branch, sha: str, marks: tuple[Any, Any], now: datetime, fetch: bool
    ) -> Read[bool]:
        """Pushes listed it, or GitHub's compare of `sha...branch` finds the branch contains it."""
        repo, name, generation = branch.repo, branch.name, branch.generation
        on_key = keys.github_on_branch(repo, generation, name, sha)
        off_key = keys.github_off_branch(repo, generation, name, sha)
        on, off = marks
        if on is not None:
            return Read(True)
        if _still_off(off, branch.pushes, now, fresh=fetch):
            return Read(False)
        read = await self.calls.ask(
            ("branch", repo.lower(), name, sha),
            now,
            fetch,
            lambda: self.calls.github.compare(repo, sha, name),
        )
        if read.value is None:
            return Read(None, read.problem, read.recheck_at)
        if read.value.contains_base:
            await self.redis.set(on_key, "1", ex=keys.GITHUB_ON_BRANCH_TTL)
            return Read(True)
        off = f"{branch.pushes}|{now.timestamp():.0f}"
        await self.redis.set(off_key, off, ex=keys.GITHUB_OFF_BRANCH_TTL)
        return Read(False)

    async def relation(
        self, branch: Branch, source: str, target: str, now: datetime, fetch: bool
    ) -> Read[Relation]:
        """How `source` stands to `target`: from the pushes, the cache, or GitHub's compare."""
        if source == target:
            return Read(Relation.IDENTICAL)
        key = keys.github_compare(branch.repo, branch.generation, target, source)
        cached = await self.redis.get(key)
        if cached is not None:
            return Read(Relation(text(cached)))
        if await self._descends(branch, source, target):
            return Read(Relation.AHEAD)
        if await self._descends(branch, target, source):
            return Read(Relation.BEHIND)
        read = await self.calls.ask(
            ("compare", branch.repo.lower(), target, source),
            now,
            fetch,
            lambda: self.calls.github.compare(branch.repo, target, source),
        )
        if read.value is not None:
            await self.redis.set(key, read.value.value, ex=keys.GITHUB_COMPARE_TTL)
        return read

    async def _descends(self, branch: Branch, sha: str, ancestor: str) -> bool:
        """True when recorded fast-forward pushes lead from `ancestor` to `sha`."""
        for _ in range(WALK_MAX):
            parent = await self.redis.get(
                keys.github_parent(branch.repo, branch.generation, branch.name, sha)
            )
            if parent is None:
                return False
            sha = text(parent)
            if sha == ancestor:
                return True
        return False


def _still_off(off: bytes | str | None, pushes: int, now: datetime, *, fresh: bool) -> bool:
    """A "not on the branch" no push came after; to decide (`fresh`), only a recent one."""
    if off is None:
        return False
    number, _, at = text(off).partition("|")
    if number != str(pushes):
        return False
    return (
        not fresh or now.timestamp() - float(at or 0) < keys.GITHUB_OFF_BRANCH_FRESH.total_seconds()
    )


def _branch_keys(repo: str, branch: str) -> tuple[str, str]:
    return keys.github_generation(repo), keys.github_pushes(repo, branch)


def _branch(repo: str, name: str, reply: Sequence[Any]) -> Branch:
    """The branch from the reply to an MGET of `_branch_keys`."""
    generation, pushes = reply
    return Branch(repo, name, int(generation or 0), int(pushes or 0))


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
