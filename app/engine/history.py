"""What ran on each source app before Cascade watched it, read from Heroku's release lists.

Order decides "never backwards" where Git cannot (`app.core.order`): a commit's place in its
source's history. The history is read once per source app (`HISTORY_DEPTH` releases) and
kept in Redis; where it may not reach a commit's first run, further back (`LOOK_BACK`),
once per commit.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from app.core import order
from app.core.models import ReleaseStatus, Snapshot
from app.engine.topology import Topology
from app.heroku.client import HerokuClient, HerokuError
from app.signals.github.facts import Relation
from app.storage.store import Store

log = logging.getLogger(__name__)
HISTORY_DEPTH = 50  # releases read once per source app to learn which commits ran there
LOOK_BACK = 1000  # releases read (one page), once, for a target's commit older than the history
REMEMBER_LOOKED_UP = timedelta(days=1)  # far within keys.LOOKED_UP_TTL


class HistoryReader:
    """Learns the histories of a service's source apps into the store, once each."""

    def __init__(self, heroku: HerokuClient, store: Store, clock: Callable[[], datetime]) -> None:
        self.heroku, self.store, self.clock = heroku, store, clock
        self._loaded: set[tuple[str, str]] = set()  # (service, app) known loaded in Redis
        # (service, app, commit) looked up further back, so in Redis for `LOOKED_UP_TTL`: asked
        # there again, each reconcile of a pair the look-up did not place cost a round trip
        # per app (a tick over 1,000 services 3x slower, BENCHMARKS.md). Forgotten daily, well
        # within that TTL, so Redis always still has what this remembers.
        self._looked: set[tuple[str, str, str]] = set()
        self._looked_since = clock()

    def forget(self, name: str) -> None:
        """The service's histories are to be checked in Redis again."""
        self._loaded = {known for known in self._loaded if known[0] != name}
        self._looked = {known for known in self._looked if known[0] != name}

    def forget_all(self) -> None:
        self._loaded.clear()
        self._looked.clear()

    async def learn(self, name: str, topology: Topology) -> None:
        """Once per source app: which commits ran there, since when, and in which order (one
        call each: `HISTORY_DEPTH` releases; a rollback to an older one places its commit by
        the version it brought back, `app.core.order`).

        A history once loaded stays loaded, so this process stops asking Redis about it.
        """
        sources = [app for app in topology.stages[:-1] if (name, app) not in self._loaded]
        if not sources:
            return
        loaded = await self.store.history_loaded(name, sources)
        for app, done in zip(sources, loaded, strict=True):
            if done:
                self._loaded.add((name, app))
                continue
            releases = await self.heroku.releases(app, HISTORY_DEPTH)
            # Arrived now, by Cascade's clock, which alone decides ages: how long each ran
            # before Cascade looked is unknown (`created_at` is Heroku's clock, and when the
            # release started), so a commit running at onboarding waits `min_age` once.
            now = self.clock()
            succeeded = [r for r in releases if r.status is ReleaseStatus.SUCCEEDED and r.commit]
            first = {r.commit: now for r in succeeded if r.commit}
            # Of these, only the newest is known to have run (it runs now): an older one may
            # have succeeded after a newer one became current. Only a release known to have
            # run may be promoted as proven (`app.core.proven`).
            runs = max(succeeded, key=lambda r: r.version, default=None)
            ran = {runs.commit: runs} if runs and runs.commit else {}
            versions = [r.version for r in releases]
            from_v1 = max(versions, default=0) if min(versions, default=1) == 1 else None
            positions = order.positions(releases)
            await self.store.add_history(name, app, first, positions, from_v1, ran)
            self._loaded.add((name, app))

    async def look_further_back(self, name: str, snapshot: Snapshot) -> bool:
        """Read `LOOK_BACK` releases of an app, once per commit, where the history (the newest
        `HISTORY_MAXLEN` commits, from the last `HISTORY_DEPTH` releases at first) may not
        reach a commit's first run. True when a place was learnt.

        - A target's commit that is not in its source's history may have run there before
          it: placed, it is not taken for a hotfix.
        - A source's commit about to be promoted over an older-looking one may be an old
          commit deployed again (a `git push`, not Heroku's rollback): its first run there
          would be older than the history. Looked up in each stage whose order may decide.

        Not in an app whose history is whole (read from v1, none missed since): nothing
        ran there before it, so a promotion there costs no read (`tests/engine/test_economy.py`).
        """
        wanted: dict[str, dict[str, int | None]] = {}  # app -> commit -> known place
        for pair in snapshot.pairs():
            source, target = pair.source, pair.target
            commit, target_commit = source.commit, target.commit
            known = snapshot.positions.get(source.app)
            if not commit or not target_commit or commit == target_commit:
                continue
            if known and target_commit not in known:  # with the source's: one read for both
                wanted.setdefault(source.app, {}).update(
                    {target_commit: None, commit: known.get(commit)}
                )
            facts = snapshot.signals.github.get((commit, target_commit))
            if facts is not None and facts.relation is Relation.AHEAD:
                continue  # Git settles it
            for stage in (*snapshot.before(pair), source):
                places = snapshot.positions.get(stage.app) or {}
                at, other_at = places.get(commit), places.get(target_commit)
                if at is not None and other_at is not None and at > other_at:
                    wanted.setdefault(stage.app, {})[commit] = at
        learnt = False
        if self.clock() - self._looked_since > REMEMBER_LOOKED_UP:
            self._looked, self._looked_since = set(), self.clock()
        for app, commits in wanted.items():
            fresh = sorted(c for c in commits if (name, app, c) not in self._looked)
            if not fresh:
                continue
            done, whole = await self.store.looked_up(name, app, fresh)
            self._looked |= {(name, app, c) for c in done}
            asked = {c: commits[c] for c in fresh if c not in done}
            if whole or not asked:
                continue
            try:
                releases = await self.heroku.releases(app, LOOK_BACK)
            except HerokuError as error:
                log.warning("cannot read further back in %s service=%s: %s", app, name, error)
                continue
            placed = order.positions(releases)
            found = {c: placed.get(c, 0) for c in asked}
            await self.store.add_looked_up(name, app, found)
            self._looked |= {(name, app, c) for c in found}
            learnt |= any(0 < at < (asked[c] or at + 1) for c, at in found.items())
        return learnt
