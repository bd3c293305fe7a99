"""The auto-halt's one-step rollback (`rollback = true`): the halted stage runs again the
release it ran before the promotion (the record's `over`), with the Platform API's release
Rollback, freezes notwithstanding.

Once per halt across processes (`Store.claim_rollback`), never when the stage no longer
runs the halted commit, and never retried: a release Heroku no longer has, or a refusal,
is recorded as `rollback.failed` with the reason, for an operator to act on.
"""

import logging
from collections.abc import Callable
from datetime import datetime

from app.config.durations import short
from app.core.halt import Halt
from app.core.models import ReleaseStatus, Snapshot
from app.heroku.client import HerokuClient, HerokuError, NotFound
from app.storage.audit import Audit, Event
from app.storage.store import Store

log = logging.getLogger(__name__)


class Rollbacks:
    def __init__(
        self,
        heroku: HerokuClient,
        store: Store,
        audit: Audit,
        clock: Callable[[], datetime],
    ) -> None:
        self.heroku, self.store, self.audit, self.clock = heroku, store, audit, clock

    async def __call__(self, halt: Halt, snapshot: Snapshot) -> None:
        """Roll the halted stage back once, unless it has moved on since."""
        promotion = halt.promotion
        stage = next((s for s in snapshot.stages if s.app == promotion.target), None)
        if stage is None or stage.commit != promotion.commit:
            log.info("no rollback of %s: it runs another commit now", promotion.target)
            return
        if not await self.store.claim_rollback(halt.service, promotion.target, promotion.commit):
            return
        if promotion.over is None:
            await self._failed(halt, None, None, "the release it ran before is not known")
            return
        try:
            before = await self.heroku.release(promotion.target, promotion.over)
        except NotFound:
            await self._failed(halt, promotion.over, None, "Heroku no longer has that release")
            return
        except HerokuError as error:
            await self._failed(halt, promotion.over, None, str(error))
            return
        if before.status is not ReleaseStatus.SUCCEEDED:
            why = f"v{before.version} is {before.status.value}, not a release to go back to"
            await self._failed(halt, before.id, before.commit, why)
            return
        await self._roll_back(halt, before.id, before.version, before.commit)

    async def _roll_back(self, halt: Halt, release: str, version: int, to: str | None) -> None:
        """The POST, once: whatever happens, it is recorded and never sent again."""
        target, commit = halt.promotion.target, halt.promotion.commit
        message = f"rolling {target} back to v{version} ({short(to)}) from {short(commit)}"
        await self._record(halt, "rollback.started", message, release, to)
        try:
            made = await self.heroku.rollback(target, release)
        except HerokuError as error:
            await self._failed(halt, release, to, str(error))
            return
        message = f"{target} rolled back to v{version} ({short(to)}) as v{made.version}"
        await self._record(halt, "rollback.succeeded", message, release, to)

    async def _failed(self, halt: Halt, release: str | None, to: str | None, why: str) -> None:
        target = halt.promotion.target
        message = f"rollback of {target} from {short(halt.promotion.commit)} failed: {why}"
        log.warning("service=%s %s", halt.service, message)
        await self._record(halt, "rollback.failed", message, release, to)

    async def _record(
        self, halt: Halt, kind: str, message: str, release: str | None, to: str | None
    ) -> None:
        event = Event(
            kind=kind,
            message=message,
            at=self.clock(),
            service=halt.service,
            commit=halt.promotion.commit,
            target=halt.promotion.target,
            details={"release": release, "to_commit": to},
        )
        await self.audit.record(event)
