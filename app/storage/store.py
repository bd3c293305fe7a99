"""The Redis adapter for the view of each service: stages, history, pauses, dedup, builds.

Promotion records live in `ledger.py` and locks in `locks.py`; every key comes
from `keys.py`.
"""

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, TypeVar

from pydantic import TypeAdapter

from app.core.models import Artifact, Pause, Release, ReleaseStatus, StageView
from app.core.order import position
from app.core.view import fold_release
from app.storage import keys
from app.storage.client import Batch, Client, mget, script_first

K = TypeVar("K")
V = TypeVar("V")
_stage = TypeAdapter(StageView)
_pause = TypeAdapter(Pause)


# Drops the commits that stand first in an app's release order (KEYS[o], the oldest) past
# `keep` from its positions, and from its history (KEYS[h]) and the releases that ran them
# (KEYS[r]) with them: a commit of the history is in all three or in none (one whose release
# never ran has a position only). A history that held every release (its loaded mark KEYS[m]
# "whole") no longer does then, nor after a release it missed (`partial`). `note` keeps the
# newest release ("version id created_at") that ran each commit.
_TRIM = """
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
_HISTORY = """
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
# release folded in since the read was checked for a gap against that (`_FOLD`).
_ADD = (
    _TRIM
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

# KEYS: the stage, its history, its positions, its history's loaded mark, the releases that ran
# its commits, the delivery's seen marks: all of the service's slot. ARGV: the stage as read
# ("" for none), as folded ("" if unchanged), the commit to note in the history ("" for none),
# its arrival, the history's length, the marks' TTL, how many marks, the commit's position,
# "1" when releases before it may be missing from the history, the release ("version id
# created_at"). An arrival of 0: the release never ran (a newer one was current), so only its
# place is noted.
# Answers -1 when the stage changed since it was read (nothing written) with the stage as it
# is, else 1 when every seen mark is new, 0 when one was there.
_FOLD = (
    _TRIM
    + """
local seen = tonumber(ARGV[7])
local current = redis.call('get', KEYS[1]) or ''
if current ~= ARGV[1] then return {-1, current} end
if ARGV[2] ~= '' then redis.call('set', KEYS[1], ARGV[2]) end
if ARGV[3] ~= '' then
  if ARGV[4] ~= '0' then
    redis.call('zadd', KEYS[2], 'NX', ARGV[4], ARGV[3])
    note(5, ARGV[3], ARGV[10])
  end
  redis.call('zadd', KEYS[3], 'LT', ARGV[8], ARGV[3])
  if ARGV[9] ~= '' then partial(4) end
  trim(2, 3, 4, ARGV[5], 5)
end
local first = 1
for k = 6, 5 + seen do
  if not redis.call('set', KEYS[k], '1', 'NX', 'EX', ARGV[6]) then first = 0 end
end
return {first, ''}
"""
)

STAGES_KEPT = 20_000  # stage values kept per process, to fold without reading (~10 MB)
ARTIFACTS_KEPT = 20_000  # build commits kept per process (~3 MB)


class Kept(OrderedDict[K, V]):
    """What this process keeps of immutable or compare-and-set data: the oldest go first.

    An OrderedDict, since dropping a plain dict's first entry again and again makes finding
    the next first entry slower each time (a tick over 1,000 services spent 0.2 s on it).
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def keep(self, key: K, value: V) -> V:
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


HEARD_EVERY = 1.0  # seconds: a busy sender is noted in Redis at most this often per process


class Histories(NamedTuple):
    """What a decision reads of the source apps' histories: app -> commit -> value."""

    arrived: dict[str, dict[str, datetime]]  # when each first ran there, for the age gate
    positions: dict[str, dict[str, int]]  # its place in the app's release order (`app.core.order`)
    # app -> the newest release there whose commit arrived by the cutoff asked (`app.core.proven`)
    proven: dict[str, Release]
    # app -> the first arrival there after the cutoff: the next commit to prove itself
    next_arrival: dict[str, datetime]


# KEYS: the halt's once-mark, the service's suspects, its pause. ARGV: the mark's lifetime
# (seconds), the commit, why, the pause's JSON. All three or nothing, and only the first time.
_HALT = """
if not redis.call('set', KEYS[1], ARGV[3], 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('hset', KEYS[2], ARGV[2], ARGV[3])
redis.call('set', KEYS[3], ARGV[4])
return 1
"""


class Folded(NamedTuple):
    changed: bool  # the stage changed
    first: bool  # no id of the sighting was seen before


@dataclass(frozen=True)
class ServiceView:
    """What a reconcile reads first about a service, in one round trip."""

    stages: tuple[StageView, ...]
    global_pause: Pause | None
    service_pause: Pause | None
    gate_states: dict[str, str]  # target app -> the signature last audited
    in_flight: int = 0  # promotions claimed and not settled yet
    resync_due: bool = False  # no process re-read the pipeline lately (`mark_resync`)
    suspects: dict[str, str] = field(default_factory=dict)  # commit -> why (`app.core.halt`)


class Store:
    def __init__(self, client: Client) -> None:
        self.redis = client
        self._history = client.register_script(_HISTORY)
        self._add = client.register_script(_ADD)
        self._artifacts = Kept[Artifact, str](ARTIFACTS_KEPT)  # build -> its commit
        # stage key -> its JSON ("" none) as this process last saw it, and that JSON parsed
        self._stages_seen = Kept[str, tuple[str, StageView]](STAGES_KEPT)
        self._fold = client.register_script(_FOLD)
        self._halt = client.register_script(_HALT)
        self._heard: dict[str, datetime] = {}  # source -> when this process last noted it
        self._folds: dict[str, int] = {}  # service -> releases this process folded in

    def forget_kept(self) -> None:
        """Redis lost its data (`app.storage.epoch`): what this process kept of it is void."""
        self._stages_seen.clear()

    def folds(self, service: str) -> int:
        """How many releases this process has folded into the service's stages so far."""
        return self._folds.get(service, 0)

    # stages -------------------------------------------------------------

    async def stages(self, service: str, apps: Sequence[str]) -> tuple[StageView, ...]:
        if not apps:
            return ()
        raw = await self.redis.mget([keys.stage(service, app) for app in apps])
        return self._parse_stages(service, apps, raw)

    async def view(self, service: str, apps: Sequence[str]) -> ServiceView:
        """Stages, pauses, the gate states last audited and what is due, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            self.send_view(pipe, service, apps)
            return self.view_of(service, apps, await pipe.execute())

    def send_view(self, pipe: Batch, service: str, apps: Sequence[str]) -> None:
        """Queue the view's reads on `pipe` (the lock's, for a reconcile: `Locks.hold`).

        The global pause is a command of its own: it lives on another cluster slot.
        """
        pipe.get(keys.GLOBAL_PAUSE)
        pipe.get(keys.pause(service))
        pipe.hgetall(keys.gates(service))
        pipe.scard(keys.promotions(service))
        pipe.exists(keys.resynced(service))
        pipe.hgetall(keys.suspects(service))
        if apps:
            mget(pipe, [keys.stage(service, app) for app in apps])

    def view_of(self, service: str, apps: Sequence[str], replies: Sequence[Any]) -> ServiceView:
        """The view from the replies to `send_view`'s reads."""
        global_pause, service_pause, gates, in_flight, resynced, suspects, *stages = replies
        return ServiceView(
            stages=self._parse_stages(service, apps, stages[0]) if apps else (),
            global_pause=_pause.validate_json(global_pause) if global_pause else None,
            service_pause=_pause.validate_json(service_pause) if service_pause else None,
            gate_states={_text(k) or "": _text(v) or "" for k, v in gates.items()},
            in_flight=int(in_flight),
            resync_due=not resynced,
            suspects={_text(k) or "": _text(v) or "" for k, v in suspects.items()},
        )

    async def put_release(
        self,
        service: str,
        release: Release,
        seen_at: datetime,
        *,
        sighting: tuple[str, Sequence[str]] | None = None,
    ) -> Folded:
        """Fold `release` into its stage, note its commit's arrival and position (`app.core.order`),
        cache the build's commit.

        `sighting` (sender, delivery ids) marks the delivery seen in the same atomic step, so
        it is never marked seen without being stored. One round trip, a compare-and-set
        script on the stage, when the stage is as this process last saw it; else the script
        answers with the stage as it is, and the release is folded onto that.

        A succeeded release's commit counts as arrived at `seen_at`, when Cascade learned it
        runs, by Cascade's clock: never Heroku's `created_at`, which is another clock and
        marks when the release started, not when it began to run (issue 15, row 9). Only
        when it runs: one that succeeds after a newer release became current never ran, and
        its commit's age starts when a release of it does (simulation, `--rounds 4`, seed 161).
        """
        key = keys.stage(service, release.app)
        sender, ids = sighting or ("", ())
        seen = [keys.seen(service, sender, i) for i in ids]
        commit = release.commit if release.status is ReleaseStatus.SUCCEEDED else None
        # The build's commit is cached in the same round trip, after the script: it never
        # changes (no CAS), and builds are shared by every service, on a slot of their own.
        built = release.artifact
        cached = (built, release.commit) if built and release.commit else None
        last = self._stages_seen.get(key)
        raw = last[0] if last else None  # as this process last saw it: no read when right
        while True:
            if raw is None:
                raw = _text(await self.redis.get(key)) or ""
            before = self._stage_of(key, release.app, raw)
            after = fold_release(before, release)
            changed = after != before
            folded = _stage.dump_json(after).decode() if changed else ""
            (answer, current), *_ = await script_first(
                self.redis,
                self._fold,
                [
                    key,
                    keys.history(service, release.app),
                    keys.positions(service, release.app),
                    keys.history_loaded(service, release.app),
                    keys.ran(service, release.app),
                    *seen,
                ],
                [
                    raw,
                    folded,
                    commit or "",
                    seen_at.timestamp() if commit and after.release == release else 0,
                    keys.HISTORY_MAXLEN,
                    int(keys.DEDUP_TTL.total_seconds()),
                    len(seen),
                    position(release),
                    "1" if commit and _after_a_gap(before, release) else "",
                    ran_ref(release),
                ],
                self._caching(*cached) if cached else None,
            )
            if cached:
                self._artifacts.keep(*cached)
                cached = None  # sent once
            if int(answer) >= 0:
                self._stages_seen.keep(key, (folded, after) if changed else (raw, before))
                if changed:
                    self._folds[service] = self._folds.get(service, 0) + 1
                return Folded(changed=changed, first=int(answer) == 1)
            raw = _text(current) or ""  # it changed since: fold onto what is there now

    # history --------------------------------------------------------------

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
                found.next_arrival[app] = _moment(row[8])
            scores = row[9:]
            arrived = {_text(newest) or "": _moment(newest_at)} if newest else {}
            placed = {_text(highest) or "": int(float(highest_at))} if highest else {}
            if proven:
                commit = _text(proven) or ""
                arrived[commit], placed[commit] = _moment(proven_at), int(float(proven_place))
                if ref:
                    found.proven[app] = ran_release(app, commit, _text(ref) or "")
            for commit, at, place in zip(commits, scores[::2], scores[1::2], strict=True):
                if at:
                    arrived[commit] = _moment(at)
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
        return done, _text(mark) == "whole"

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

    # pauses ---------------------------------------------------------------

    async def pause(self, service: str | None) -> Pause | None:
        raw = await self.redis.get(_pause_key(service))
        return _pause.validate_json(raw) if raw else None

    async def set_pause(self, pause: Pause) -> None:
        """Store the pause. A timed one ends at `until` by Cascade's clock (`Pause.active`, read
        by the allow gate); Redis forgets it a day later, as housekeeping, never deciding."""
        key, value = _pause_key(pause.service), _pause.dump_json(pause)
        if pause.until is None:
            await self.redis.set(key, value)
        else:
            gone = pause.until + keys.PAUSE_KEPT_AFTER
            await self.redis.set(key, value, pxat=int(gone.timestamp() * 1000))

    async def lift_pause(self, service: str | None) -> Pause | None:
        raw = await self.redis.getdel(_pause_key(service))
        return _pause.validate_json(raw) if raw else None

    # suspect commits (`app.core.halt`) -------------------------------------------

    async def halt(self, target: str, commit: str, pause: Pause) -> bool:
        """Mark `commit` suspect and pause its service, once per (service, target, commit)
        across processes and repeated webhooks, in one step; True for the caller that did.

        Once only: an operator who lifted the pause is not paused again by the same news."""
        assert pause.service is not None
        service = pause.service
        reply = await self._halt(
            keys=[
                keys.halted(service, target, commit),
                keys.suspects(service),
                keys.pause(service),
            ],
            args=[
                int(keys.HALT_TTL.total_seconds()),
                commit,
                pause.reason,
                _pause.dump_json(pause),
            ],
        )
        return bool(reply)

    async def claim_rollback(self, service: str, target: str, commit: str) -> bool:
        """True for the one caller that rolls `target` back for the halt of `commit`."""
        key, ttl = keys.rolled_back(service, target, commit), keys.HALT_TTL
        return bool(await self.redis.set(key, "1", nx=True, ex=ttl))

    async def add_suspect(self, service: str, commit: str, reason: str) -> None:
        await self.redis.hset(keys.suspects(service), commit, reason)

    async def clear_suspect(self, service: str, commit: str) -> bool:
        """Forget that `commit` is suspect; False when it was not."""
        return bool(await self.redis.hdel(keys.suspects(service), commit))

    # gate states, to audit transitions only ------------------------------

    async def set_gate_states(
        self, service: str, states: dict[str, str], gone: Sequence[str]
    ) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            if states:
                pipe.hset(keys.gates(service), mapping=states)  # type: ignore[arg-type]
            if gone:
                pipe.hdel(keys.gates(service), *gone)
            await pipe.execute()

    # dedup and caches ----------------------------------------------------

    async def first_sighting(self, sender: str, *ids: str) -> bool:
        """Remember delivery ids; True unless any of them was seen before."""
        ttl = int(keys.DEDUP_TTL.total_seconds())
        async with self.redis.pipeline(transaction=False) as pipe:
            for delivery in ids:
                pipe.set(keys.dedup(sender, delivery), "1", nx=True, ex=ttl)
            results = await pipe.execute()
        return all(results)

    async def forget_sighting(self, sender: str, *ids: str) -> None:
        await self.redis.delete(*(keys.dedup(sender, delivery) for delivery in ids))

    async def get(self, artifact: Artifact) -> str | None:
        """CommitCache: builds are immutable; a commit is kept for `ARTIFACT_TTL`, then read
        again. Kept in this process too, so the re-read before a promotion waits on no Redis.
        """
        commit = self._artifacts.get(artifact) or _text(
            await self.redis.get(keys.artifact(*artifact))
        )
        if commit is not None:
            self._artifacts.keep(artifact, commit)
        return commit

    async def put(self, artifact: Artifact, commit: str) -> None:
        self._artifacts.keep(artifact, commit)
        await self.redis.set(keys.artifact(*artifact), commit, ex=keys.ARTIFACT_TTL)

    @staticmethod
    def _caching(artifact: Artifact, commit: str) -> Callable[[Batch], None]:
        """Queue the build's commit, to ride in another round trip (`put_release`'s)."""

        def cache(pipe: Batch) -> None:
            pipe.set(keys.artifact(*artifact), commit, ex=keys.ARTIFACT_TTL)

        return cache

    def _parse_stages(
        self, service: str, apps: Sequence[str], raw: Sequence[bytes | str | None]
    ) -> tuple[StageView, ...]:
        """The stages as read, each remembered for the next fold (`put_release`)."""
        return tuple(
            self._stage_of(keys.stage(service, app), app, _text(value) or "")
            for app, value in zip(apps, raw, strict=True)
        )

    def _stage_of(self, key: str, app: str, raw: str) -> StageView:
        """`raw` parsed, or as it was parsed when last seen: a stage changes far less often
        than it is read (each reconcile reads every stage, each fold its own)."""
        last = self._stages_seen.get(key)
        if last is not None and last[0] == raw:
            return last[1]
        view = _stage.validate_json(raw) if raw else StageView(app)
        self._stages_seen.keep(key, (raw, view))
        return view

    async def mark_resync(self, service: str, every_seconds: float) -> bool:
        """True for the one process that should re-read the pipeline now."""
        ok = await self.redis.set(
            keys.resynced(service), "1", nx=True, px=int(every_seconds * 1000)
        )
        return bool(ok)

    async def resync_soon(self, service: str) -> None:
        """The next reconcile re-reads the pipeline: news came that only Heroku can complete."""
        await self.redis.delete(keys.resynced(service))

    async def set_topology(self, service: str, value: str) -> None:
        await self.redis.set(keys.topology(service), value)

    async def topology(self, service: str) -> str | None:
        return _text(await self.redis.get(keys.topology(service)))

    async def forget_topology(self, service: str) -> None:
        """The services file changed the service: read its pipeline again."""
        await self.redis.delete(keys.topology(service))

    async def forget_apps(self, service: str, apps: Sequence[str]) -> None:
        """The apps were re-created (new ids): their stages and histories are of apps gone.

        The next fold starts each stage afresh (a new app's versions start at 1 again, which
        the old stage would take for old news) and the next reconcile learns its history.
        """
        if not apps:
            return
        await self.redis.delete(
            *(
                key
                for app in apps
                for key in (
                    keys.stage(service, app),
                    keys.history(service, app),
                    keys.positions(service, app),
                    keys.looked_up(service, app),
                    keys.history_loaded(service, app),
                    keys.ran(service, app),
                )
            )
        )
        for app in apps:
            self._stages_seen.pop(keys.stage(service, app), None)

    # signal sources ------------------------------------------------------

    async def heard(self, source: str, at: datetime) -> None:
        """An authentic delivery from `source` arrived (any process): for `/metrics`.

        Noted at most once a second per source and process: the gauge counts seconds,
        and a round trip per delivery was a tenth of the webhook path's cost (BENCHMARKS.md).
        """
        last = self._heard.get(source)
        if last is not None and timedelta(0) <= at - last < timedelta(seconds=HEARD_EVERY):
            return
        self._heard[source] = at
        await self.redis.hset(keys.HEARD, source, str(at.timestamp()))

    async def last_heard(self) -> dict[str, datetime]:
        raw = await self.redis.hgetall(keys.HEARD)
        return {str(k): datetime.fromtimestamp(float(v), UTC) for k, v in raw.items()}


def _pause_key(service: str | None) -> str:
    return keys.pause(service) if service else keys.GLOBAL_PAUSE


def _moment(score: bytes | str | float) -> datetime:
    return datetime.fromtimestamp(float(score), UTC)


def _after_a_gap(before: StageView, release: Release) -> bool:
    """Whether a succeeded release may come after others the history never saw: not the next
    version after the one the stage ran (a failed release between counts as a gap)."""
    runs = before.release
    return runs is None or release.version > runs.version + 1


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
        created_at=_moment(created),
    )


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
