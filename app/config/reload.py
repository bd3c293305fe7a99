"""Reload the services file without a restart: on SIGHUP, when the file changes, on POST /reload.

The new file is loaded and checked whole first: an invalid one is refused with the loader's
message (file, service, field) and the running configuration stays. A valid one is swapped
in at once (plain assignments, no await between them), the pipelines of changed services are
read again, every new or changed service is reconciled and the webhook subscriptions checked.
"""

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from app.config.catalog import Catalog, ConfigProblem
from app.config.services import ConfigError, ServicesConfig, load_services
from app.tasks import cancel

log = logging.getLogger(__name__)

Stamp = tuple[int, int, int] | None


@dataclass(frozen=True)
class Reload:
    """What a reload did: refused (with why), unchanged, or applied with its differences."""

    applied: bool
    message: str
    services: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()


def stamp(path: Path) -> Stamp:
    """Modification time, size and inode: a file replaced by a rename changes too."""
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def differences(
    old: ServicesConfig, new: ServicesConfig
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Service names added, removed, and changed in any field, in the new file's order."""
    before = {s.name: s for s in old.services}
    after = {s.name: s for s in new.services}
    added = tuple(name for name in after if name not in before)
    removed = tuple(name for name in before if name not in after)
    changed = tuple(n for n in after if n in before and after[n] != before[n])
    return added, removed, changed


class Reloader:
    """Reloads the services file into the catalog; one reload at a time.

    What a new file changes elsewhere is handed in: `forget` what the process knew of a
    changed or removed service, `reconcile` (enqueue) every service, `grow` the sandbox's
    pipelines (before the swap: a reconcile after it finds them), and tell the webhook
    subscriptions the file `changed`.
    """

    def __init__(
        self,
        path: Path,
        catalog: Catalog,
        *,
        counted: Callable[[str], None],
        forget: Callable[[str], Awaitable[None]],
        reconcile: Callable[[str], None],
        grow: Callable[[ServicesConfig], None] | None = None,
        changed: Callable[[], None] | None = None,
    ) -> None:
        self.path, self.catalog, self._counted = path, catalog, counted
        self._forget, self._reconcile, self._grow, self._changed = forget, reconcile, grow, changed
        self._lock = asyncio.Lock()

    async def reload(self, why: str) -> Reload:
        async with self._lock:
            catalog, path = self.catalog, self.path
            try:
                config = await asyncio.to_thread(load_services, path)
            except ConfigError as error:
                self._counted("refused")
                catalog.refused(ConfigProblem(str(error), str(path), datetime.now(UTC)))
                log.error(
                    "services file NOT reloaded (%s): %s; still running the previous one"
                    " (%d services)",
                    why,
                    error,
                    len(catalog.services),
                )
                return Reload(False, f"{error} (still running the previous file)")
            added, removed, changed = differences(catalog.config, config)
            names = tuple(s.name for s in config.services)
            if config == catalog.config:
                catalog.accepted()  # a good file again: the last refusal is over
                self._counted("unchanged")
                return Reload(True, "unchanged", names)
            await self._apply(config, removed + changed)
            self._counted("applied")
            message = (
                f"reloaded: {len(names)} services; added {_list(added)}, removed"
                f" {_list(removed)}, changed {_list(changed)}"
            )
            log.info("services file %s (%s)", message, why)
            return Reload(True, message, names, added, removed, changed)

    async def _apply(self, config: ServicesConfig, stale: tuple[str, ...]) -> None:
        if self._grow is not None:  # the simulated Heroku grows the pipelines it lacks
            self._grow(config)
        self.catalog.swap(config)  # the swap: everyone reads the config through the catalog
        for name in stale:
            await self._forget(name)
        for service in config.services:
            self._reconcile(service.name)
        if self._changed is not None:
            self._changed()


def _list(names: tuple[str, ...]) -> str:
    return ", ".join(names) if names else "none"


class Watcher:
    """Asks for a reload on SIGHUP, and when the file's stamp changes (polled every `every` s)."""

    def __init__(
        self, path: Path, reload: Callable[[str], Awaitable[object]], every: float
    ) -> None:
        self.path, self._reload, self._every = path, reload, every
        self._hup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._signal = False

    def start(self) -> None:
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._hup.set)
            self._signal = True
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
            log.info("SIGHUP does not reload here; the file is still watched")
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._signal:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            self._signal = False
        if self._task is not None:
            await cancel([self._task])
            self._task = None

    async def _run(self) -> None:
        seen = stamp(self.path)
        while True:
            why = await self._next()
            now = stamp(self.path)
            if why == "SIGHUP" or now != seen:
                seen = now
                try:
                    await self._reload(why if why == "SIGHUP" else "the file changed")
                except Exception:
                    log.exception("services file reload failed")

    async def _next(self) -> str:
        """Wait for SIGHUP ("SIGHUP") or the next poll ("poll")."""
        try:
            async with asyncio.timeout(self._every or None):
                await self._hup.wait()
        except TimeoutError:
            return "poll"
        self._hup.clear()
        return "SIGHUP"
