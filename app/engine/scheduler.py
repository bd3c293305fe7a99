"""APScheduler: the fallback tick and one-shot wake-ups at the moment a gate opens.

Neither reconciles by itself: both only enqueue, like a webhook does. Their jobs are
coroutines, so APScheduler runs them on the event loop: a plain function would run in a
thread pool, enqueueing from another thread (unsafe, and the loop notices late).
"""

from collections.abc import Callable
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler


class Scheduler:
    def __init__(self, enqueue: Callable[[str], None], services: Callable[[], list[str]]) -> None:
        self._enqueue = enqueue
        self._services = services
        self._scheduler = AsyncIOScheduler(timezone="UTC")

    def start(self, tick_seconds: float) -> None:
        self._scheduler.add_job(
            self._tick, "interval", seconds=tick_seconds, id="tick", coalesce=True, max_instances=1
        )
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def tick(self) -> None:
        for service in self._services():
            self._enqueue(service)

    async def _tick(self) -> None:
        self.tick()

    async def _wake(self, service: str) -> None:
        self._enqueue(service)

    def wake(self, service: str, at: datetime) -> None:
        """Reconcile `service` at `at`, replacing its previous wake-up (each plan recomputes).

        A plan that asks for the wake-up already set leaves the job alone: replacing it costs
        more than the rest of an idle reconcile's decision (BENCHMARKS.md).
        """
        if self.wake_at(service) == at:
            return
        self._scheduler.add_job(
            self._wake,
            "date",
            run_date=at,
            args=[service],
            id=f"wake:{service}",
            replace_existing=True,
            misfire_grace_time=None,
        )

    def wake_at(self, service: str) -> datetime | None:
        job = self._scheduler.get_job(f"wake:{service}")
        return job.next_run_time if job else None
