"""Each stage's view in Redis: a release folded in (a compare-and-set script that also notes
its commit in the app's history), what a reconcile reads first, and the builds' commits.
A part of `app.storage.store.Store`.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import TypeAdapter
from redis.commands.core import AsyncScript

from app.core.models import Artifact, Pause, Release, ReleaseStatus, StageView
from app.core.order import position
from app.core.view import fold_release
from app.storage import keys
from app.storage.artifacts import caching
from app.storage.batch import Batch, Reply
from app.storage.client import Client, Pipe, mget, script_first
from app.storage.histories import TRIM_SCRIPT, ran_ref
from app.storage.kept import Kept, text

_stage = TypeAdapter(StageView)
_pause = TypeAdapter(Pause)


# KEYS: the stage, its history, its positions, its history's loaded mark, the releases that ran
# its commits, the delivery's seen marks: all of the service's slot. ARGV: the stage as read
# ("" for none), as folded ("" if unchanged), the commit to note in the history ("" for none),
# its arrival, the history's length, the marks' TTL, how many marks, the commit's position,
# "1" when releases before it may be missing from the history, the release ("version id
# created_at"). An arrival of 0: the release never ran (a newer one was current), so only its
# place is noted.
# Answers -1 when the stage changed since it was read (nothing written) with the stage as it
# is, else 1 when every seen mark is new, 0 when one was there.
FOLD_SCRIPT = (
    TRIM_SCRIPT
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


class StageStore:
    redis: Client
    _fold: AsyncScript
    _artifacts: Kept[Artifact, str]
    _stages_seen: Kept[str, tuple[str, StageView]]
    _folds: dict[str, int]

    def forget_kept(self) -> None:
        """Redis lost its data (`app.storage.epoch`): what this process kept of it is void."""
        self._stages_seen.clear()

    def folds(self, service: str) -> int:
        """How many releases this process has folded into the service's stages so far."""
        return self._folds.get(service, 0)

    async def stages(self, service: str, apps: Sequence[str]) -> tuple[StageView, ...]:
        if not apps:
            return ()
        raw = await self.redis.mget([keys.stage(service, app) for app in apps])
        return self._parse_stages(service, apps, raw)

    async def view(self, service: str, apps: Sequence[str]) -> ServiceView:
        """Stages, pauses, the gate states last audited and what is due, in one round trip."""
        batch = Batch()
        view = self.send_view(batch, service, apps)
        await batch.send(self.redis)
        return view.value

    def send_view(self, batch: Batch, service: str, apps: Sequence[str]) -> Reply[ServiceView]:
        """The view, read in `batch` (the lock's, for a reconcile: `Locks.hold`)."""
        return batch.add(
            lambda pipe: self._queue_view(pipe, service, apps),
            lambda replies: self._view_of(service, apps, replies),
        )

    def _queue_view(self, pipe: Pipe, service: str, apps: Sequence[str]) -> None:
        """A command of its own for the global pause: it lives on another cluster slot."""
        pipe.get(keys.GLOBAL_PAUSE)
        pipe.get(keys.pause(service))
        pipe.hgetall(keys.gates(service))
        pipe.scard(keys.promotions(service))
        pipe.exists(keys.resynced(service))
        pipe.hgetall(keys.suspects(service))
        if apps:
            mget(pipe, [keys.stage(service, app) for app in apps])

    def _view_of(self, service: str, apps: Sequence[str], replies: Sequence[Any]) -> ServiceView:
        """The view from the replies to `_queue_view`'s reads."""
        global_pause, service_pause, gates, in_flight, resynced, suspects, *stages = replies
        return ServiceView(
            stages=self._parse_stages(service, apps, stages[0]) if apps else (),
            global_pause=_pause.validate_json(global_pause) if global_pause else None,
            service_pause=_pause.validate_json(service_pause) if service_pause else None,
            gate_states={text(k) or "": text(v) or "" for k, v in gates.items()},
            in_flight=int(in_flight),
            resync_due=not resynced,
            suspects={text(k) or "": text(v) or "" for k, v in suspects.items()},
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
                raw = text(await self.redis.get(key)) or ""
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
                caching(*cached) if cached else None,
            )
            if cached:
                self._artifacts.keep(*cached)
                cached = None  # sent once
            if int(answer) >= 0:
                self._stages_seen.keep(key, (folded, after) if changed else (raw, before))
                if changed:
                    self._folds[service] = self._folds.get(service, 0) + 1
                return Folded(changed=changed, first=int(answer) == 1)
            raw = text(current) or ""  # it changed since: fold onto what is there now

    async def set_gate_states(
        self, service: str, states: dict[str, str], gone: Sequence[str]
    ) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            if states:
                pipe.hset(keys.gates(service), mapping=states)  # type: ignore[arg-type]
            if gone:
                pipe.hdel(keys.gates(service), *gone)
            await pipe.execute()

    def _parse_stages(
        self, service: str, apps: Sequence[str], raw: Sequence[bytes | str | None]
    ) -> tuple[StageView, ...]:
        """The stages as read, each remembered for the next fold (`put_release`)."""
        return tuple(
            self._stage_of(keys.stage(service, app), app, text(value) or "")
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


def _after_a_gap(before: StageView, release: Release) -> bool:
    """Whether a succeeded release may come after others the history never saw: not the next
    version after the one the stage ran (a failed release between counts as a gap)."""
    runs = before.release
    return runs is None or release.version > runs.version + 1
