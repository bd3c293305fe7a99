"""Each source app's history in Redis: the commits that ran there, when each first arrived,
where it stands in the app's release order (`app.core.order`), and the newest release that
ran each (`app.core.proven`). A part of `app.storage.store.Store`.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

from redis.commands.core import AsyncScript

from app.core.models import Release, ReleaseStatus
from app.storage import keys
from app.storage.client import Client
from app.storage.kept import moment, text

# Drops the commits that stand first in an app's release order (KEYS[o], the oldest) past
# `keep` from its positions, and from its history (KEYS[h]) and the releases that ran them
# (KEYS[r]) with them: a commit of the history is in all three or in none (one whose release
# never ran has a position only). A history that held every release (its loaded mark KEYS[m]
# "whole") no longer does then, nor after a release it missed (`partial`). `note` keeps the
# newest release ("version id created_at") that ran each commit.
TRIM_SCRIPT = """
local function partial(m)
  if redis.call('get', KEYS[m]) == 'whole' then redis.call('set', KEYS[m], '1') end
end
local function note(r, commit, ref)
  if ref == '' then return end
  local old = redis.call('hget', KEYS[r], commit)
  if not old or tonumber(string.match(old, '^%d+')) < tonumber(string.match(ref, '^%d+')) then
    redis.call('hset', KEYS[r], commit, ref)
  end
end
local function trim(h, o, m, keep, r)
  local over = redis.call('zcard', KEYS[o]) - tonumber(keep)
  if over > 0 then
    local gone = redis.call('zrange', KEYS[o], 0, over - 1)
    for i = 1, #gone, 1000 do
      redis.call('zrem', KEYS[h], unpack(gone, i, math.min(i + 999, #gone)))
      redis.call('hdel', KEYS[r], unpack(gone, i, math.min(i + 999, #gone)))
    end
    redis.call('zremrangebyrank', KEYS[o], 0, over - 1)
    partial(m)
  end
end
"""

# KEYS: per app, its history, its positions, its looked-up positions and the releases that ran
# its commits. ARGV: per app, a cutoff ("" for none), how many commits, then each. Per app: the
# newest arrival (commit, score), the highest position (commit, score), the proven commit (the
# newest that arrived by the cutoff, the highest placed of those that arrived together, with
# its arrival, position and release; false when none), the first arrival after the cutoff
# (when the next commit will have proved itself), then each commit's arrival and
# position (the looked-up one when lower).
HISTORY_SCRIPT = """
local function place_of(k, commit)
  local place = redis.call('zscore', KEYS[k + 1], commit)
  local found = redis.call('hget', KEYS[k + 2], commit)
  if found and found ~= '0' and (not place or tonumber(found) < tonumber(place)) then
    place = found
  end
  return place
end
local function proven(k, cutoff)
  if cutoff == '' then return {false, false, false, false, false} end
  local after = '(' .. cutoff
  local later = redis.call('zrangebyscore', KEYS[k], after, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  local top = redis.call('zrevrangebyscore', KEYS[k], cutoff, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  local best, best_at = false, false
  for _, commit in ipairs(top[1] and redis.call('zrangebyscore', KEYS[k], top[2], top[2]) or {}) do
    local at = place_of(k, commit)
    if at and (not best_at or tonumber(at) > tonumber(best_at)) then best, best_at = commit, at end
  end
  if not best then return {false, false, false, false, later[2] or false} end
  return {best, top[2], best_at, redis.call('hget', KEYS[k + 3], best) or false, later[2] or false}
end
local out, at = {}, 1
for k = 1, #KEYS, 4 do
  local arrived = redis.call('zrange', KEYS[k], -1, -1, 'WITHSCORES')
  local placed = redis.call('zrange', KEYS[k + 1], -1, -1, 'WITHSCORES')
  local row = {arrived[1] or false, arrived[2] or false, placed[1] or false, placed[2] or false}
  for _, value in ipairs(proven(k, ARGV[at])) do row[#row + 1] = value end
  at = at + 1
  for _ = 1, tonumber(ARGV[at]) do
    at = at + 1
    row[#row + 1] = redis.call('zscore', KEYS[k], ARGV[at])
    row[#row + 1] = place_of(k, ARGV[at])
  end
  at = at + 1
  out[#out + 1] = row
end
return out
"""

# KEYS: the history, the positions, the loaded mark, the stage, the releases that ran each
# commit. ARGV: the history's length, the newest version read ("" when the releases read do
# not reach back to v1), then (commit, arrival, position, release) for each commit. First
# arrival wins, the lowest position wins, the newest release wins.
# The history is whole when the releases read reach from v1 to what the stage runs: a
# release folded in since the read was checked for a gap against that (`FOLD_SCRIPT`).
ADD_SCRIPT = (
    TRIM_SCRIPT
    + """
for i = 3, #ARGV, 4 do
  redis.call('zadd', KEYS[1], 'NX', ARGV[i + 1], ARGV[i])
  redis.call('zadd', KEYS[2], 'LT', ARGV[i + 2], ARGV[i])
  note(5, ARGV[i], ARGV[i + 3])
end
local mark = '1'
if ARGV[2] ~= '' then
  local stage = redis.call('get', KEYS[4])
  local runs = stage and cjson.decode(stage).release
  if not runs or runs == cjson.null or runs.version <= tonumber(ARGV[2]) then mark = 'whole' end
end
redis.call('set', KEYS[3], mark)
trim(1, 2, 3, ARGV[1], 5)
"""
)


class Histories(NamedTuple):
    """What a decision reads of the source apps' histories: app -> commit -> value."""

    arrived: dict[str, dict[str, datetime]]  # when each first ran there, for the age gate
    positions: dict[str, dict[str, int]]  # its place in the app's release order (`app.core.order`)
    # app -> the newest release there whose commit arrived by the cutoff asked (`app.core.proven`)
    proven: dict[str, Release]
    # app -> the first arrival there after the cutoff: the next commit to prove itself
    next_arrival: dict[str, datetime]


class HistoryStore:
    redis: Client
    _history: AsyncScript
    _add: AsyncScript

    async def history(
        self,
        service: str,
        wanted: Mapping[str, Sequence[str]],
        cutoffs: Mapping[str, datetime] | None = None,
    ) -> Histories:
        """When each wanted commit first ran on its app and its position there, plus the app's
        newest commit in each, and, for an app with a cutoff, the newest release whose commit
        arrived by then (`app.core.proven`), placed like the rest: one round trip.

        Only what a decision looks at: reading whole histories was most of a reconcile's
        cost (BENCHMARKS.md). Read afresh each time: a position only goes down as older
        releases are seen, and one remembered too high would make a commit look newer. The
        newest entry makes an app with any history non-empty, so empty means "not known yet".
        """
        cutoffs = cutoffs or {}
        asked = {app: commits for app, commits in wanted.items() if commits}
        found = Histories({}, {}, {}, {})
        if not asked:
            return found
        args: list[str | int | float] = []
        names: list[str] = []
        for app, commits in asked.items():
            cutoff = cutoffs.get(app)
            args += [cutoff.timestamp() if cutoff else "", len(commits), *commits]
            names += [
                keys.history(service, app),
                keys.positions(service, app),
                keys.looked_up(service, app),
                keys.ran(service, app),
            ]
        rows = await self._history(keys=names, args=args)
        for (app, commits), row in zip(asked.items(), rows, strict=True):
            newest, newest_at, highest, highest_at, proven, proven_at, proven_place, ref = row[:8]
            if row[8]:
                found.next_arrival[app] = moment(row[8])
            scores = row[9:]
            arrived = {text(newest) or "": moment(newest_at)} if newest else {}
            placed = {text(highest) or "": int(float(highest_at))} if highest else {}
            if proven:
                commit = text(proven) or ""
                arrived[commit], placed[commit] = moment(proven_at), int(float(proven_place))
                if ref:
                    found.proven[app] = ran_release(app, commit, text(ref) or "")
            for commit, at, place in zip(commits, scores[::2], scores[1::2], strict=True):
                if at:
                    arrived[commit] = moment(at)
                if place:
                    placed[commit] = int(float(place))
            found.arrived[app], found.positions[app] = arrived, placed
        return found

    async def add_history(
        self,
        service: str,
        app: str,
        entries: Mapping[str, datetime],
        positions: Mapping[str, int],
        from_v1: int | None = None,
        ran: Mapping[str, Release] | None = None,
    ) -> None:
        """Note commits that ran on `app`: when each first arrived (the first noted wins), its
        position (the lowest wins), the newest release that ran it (`ran`, the newest wins);
        only the newest commits in its release order are kept. Marks the app's history loaded,
        and whole when `from_v1` (the releases read reach back to the app's first) is the
        newest version read."""
        ran = ran or {}
        args: list[str | float | int] = [keys.HISTORY_MAXLEN, from_v1 or ""]
        for commit, at in entries.items():
            release = ran.get(commit)
            args += [commit, at.timestamp(), positions[commit], ran_ref(release) if release else ""]
        await self._add(
            keys=[
                keys.history(service, app),
                keys.positions(service, app),
                keys.history_loaded(service, app),
                keys.stage(service, app),
                keys.ran(service, app),
            ],
            args=args,
        )

    async def looked_up(
        self, service: str, app: str, commits: Sequence[str]
    ) -> tuple[set[str], bool]:
        """Which of `commits` were looked up further back in `app`'s releases already, and
        whether the app's history is whole (every commit that ran there, at its first place):
        then there is nothing further back to look up."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.looked_up(service, app), list(commits))
            pipe.get(keys.history_loaded(service, app))
            found, mark = await pipe.execute()
        done = {c for c, at in zip(commits, found, strict=True) if at is not None}
        return done, text(mark) == "whole"

    async def add_looked_up(self, service: str, app: str, found: Mapping[str, int]) -> None:
        """Note where each commit stands in `app`'s releases, 0 for among none of them."""
        key = keys.looked_up(service, app)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, items=[x for place in found.items() for x in place])
            pipe.expire(key, keys.LOOKED_UP_TTL)
            await pipe.execute()

    async def history_loaded(self, service: str, apps: Sequence[str]) -> list[bool]:
        raw = await self.redis.mget([keys.history_loaded(service, app) for app in apps])
        return [value is not None for value in raw]


def ran_ref(release: Release) -> str:
    """A release that ran its commit, as `keys.ran` keeps it: "version id created_at"."""
    return f"{release.version} {release.id} {release.created_at.timestamp()}"


def ran_release(app: str, commit: str, ref: str) -> Release:
    """The release `ran_ref` wrote: succeeded, since it ran."""
    version, release_id, created = ref.split(" ")
    return Release(
        id=release_id,
        app=app,
        version=int(version),
        status=ReleaseStatus.SUCCEEDED,
        commit=commit,
        created_at=moment(created),
    )
