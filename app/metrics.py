"""Prometheus metrics of one Cascade process, served at `GET /metrics`.

Fed from the edges, never from the pure core: the audit trail (promotions), the worker
(reconcile duration, gate states from each plan), the webhook routes and the Platform API
client. Counters count what *this* process did, so each dyno exposes its own (sum across
instances); the signal ages come from Redis at scrape time and agree in every process.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)

from app.core.dora import StageFigures
from app.core.models import GateState, Plan
from app.storage.audit import Event
from app.version import version

__all__ = ["CONTENT_TYPE", "Metrics"]

WEBHOOK_OUTCOMES = ("accepted", "duplicate", "ignored", "refused", "error")
WEBHOOK_SENDERS = ("heroku", "github", "librato", "alertmanager", "status")
PROMOTION_RESULTS = {"promotion.started", "promotion.succeeded", "promotion.failed"}
_WORST = {GateState.OPEN: 0, GateState.CLOSED: 1, GateState.UNKNOWN: 2}
DORA_DAYS = 30  # the window of the DORA series
# The DORA series are read from Redis at a scrape, at most this often: scrapes every 15 s
# would otherwise read (and fold) the same records four times a minute.
DORA_REFRESH = timedelta(minutes=1)
_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Every metric of the process, on a registry of its own (one per running app)."""

    def __init__(self, owner: str, platform: str) -> None:
        # No `_created` series beside each counter and histogram: they doubled a scrape and
        # only restate the process start. prometheus_client reads this switch at scrape time.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
        self.registry = CollectorRegistry()
        reg = self.registry
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        Info("cascade", "This Cascade process", registry=reg).info(
            {"version": version(), "process": owner, "platform": platform}
        )
        self.promotions = Counter(
            "cascade_promotions",
            "Promotions by service, target stage and result (started, succeeded, failed)",
            ["service", "stage", "result"],
            registry=reg,
        )
        self.gates = Gauge(
            "cascade_gate_state",
            "1 for the state each gate of a service is in (worst over the commits waiting), else 0",
            ["service", "gate", "state"],
            registry=reg,
        )
        self.webhooks = Counter(
            "cascade_webhooks",
            "Webhook deliveries by sender and outcome",
            ["sender", "outcome"],
            registry=reg,
        )
        self.reconciles = Histogram(
            "cascade_reconcile_duration_seconds",
            "How long one reconcile of a service took, lock wait included",
            ["service"],
            buckets=_BUCKETS,
            registry=reg,
        )
        self.heroku_calls = Counter(
            "cascade_heroku_api_calls",
            "Platform API requests by endpoint and HTTP status (none: no answer)",
            ["endpoint", "status"],
            registry=reg,
        )
        self.rate_limit = Gauge(
            "cascade_heroku_rate_limit_remaining",
            "The last RateLimit-Remaining the Platform API sent",
            registry=reg,
        )
        self.signal_age = Gauge(
            "cascade_signal_age_seconds",
            "Seconds since each signal source was last heard from, by any process",
            ["source"],
            registry=reg,
        )
        self.commit_statuses = Counter(
            "cascade_commit_statuses",
            "GitHub commit statuses: posted, unchanged (not re-posted) or failed",
            ["result"],
            registry=reg,
        )
        self.halts = Counter(
            "cascade_halts",
            "Auto-halts by service and the stage a promotion into was halted",
            ["service", "stage"],
            registry=reg,
        )
        self.rollbacks = Counter(
            "cascade_rollbacks",
            "An auto-halt's rollbacks by service, stage and outcome (succeeded, failed)",
            ["service", "stage", "outcome"],
            registry=reg,
        )
        self.reloads = Counter(
            "cascade_config_reloads",
            "Services file reloads: applied, unchanged or refused (invalid)",
            ["result"],
            registry=reg,
        )
        self._dora(reg)
        self.dora_at: datetime | None = None  # when the DORA series were last refreshed
        for sender in WEBHOOK_SENDERS:  # present at 0 from the start, so rate() works
            for outcome in WEBHOOK_OUTCOMES:
                self.webhooks.labels(sender, outcome)
        self._worst: dict[str, dict[str, GateState]] = {}  # service -> what the series say

    def _dora(self, reg: CollectorRegistry) -> None:
        window = f"over the last {DORA_DAYS} days"
        self.dora_deployments = Gauge(
            "cascade_dora_deployments",
            f"Promotions that succeeded into each stage {window} (first stage: new commits)",
            ["service", "stage"],
            registry=reg,
        )
        self.dora_lead_time = Gauge(
            "cascade_dora_lead_time_seconds",
            f"First run on the first stage to promoted on the stage, {window}, by quantile",
            ["service", "stage", "quantile"],
            registry=reg,
        )
        self.dora_failure_rate = Gauge(
            "cascade_dora_change_failure_rate",
            f"Auto-halts of each stage divided by its deployments, {window}",
            ["service", "stage"],
            registry=reg,
        )
        self.dora_restore = Gauge(
            "cascade_dora_time_to_restore_seconds",
            f"A halt to the stage's next deployment of another commit, median {window}",
            ["service", "stage"],
            registry=reg,
        )

    def dora_due(self, now: datetime) -> bool:
        return self.dora_at is None or now - self.dora_at >= DORA_REFRESH

    def dora(self, found: Mapping[str, Sequence[StageFigures]], now: datetime) -> None:
        """Replace the DORA series: a figure not known (no deployment, no restore) has none."""
        gauges = (
            self.dora_deployments,
            self.dora_lead_time,
            self.dora_failure_rate,
            self.dora_restore,
        )
        for gauge in gauges:
            gauge.clear()
        for service, stages in found.items():
            for f in stages:
                self.dora_deployments.labels(service, f.stage).set(f.deployments)
                for quantile, value in (("0.5", f.lead_time_p50), ("0.9", f.lead_time_p90)):
                    if value is not None:
                        self.dora_lead_time.labels(service, f.stage, quantile).set(value)
                if f.change_failure_rate is not None:
                    self.dora_failure_rate.labels(service, f.stage).set(f.change_failure_rate)
                if f.time_to_restore is not None:
                    self.dora_restore.labels(service, f.stage).set(f.time_to_restore)
        self.dora_at = now

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def on_event(self, event: Event) -> None:
        """Audit listener: count promotions as they start, succeed or fail; auto-halts, and
        their rollbacks as they end."""
        if not (event.service and event.target):
            return
        if event.kind in PROMOTION_RESULTS:
            result = event.kind.removeprefix("promotion.")
            self.promotions.labels(event.service, event.target, result).inc()
        elif event.kind == "service.halted":
            self.halts.labels(event.service, event.target).inc()
        elif event.kind in ("rollback.succeeded", "rollback.failed"):
            outcome = event.kind.removeprefix("rollback.")
            self.rollbacks.labels(event.service, event.target, outcome).inc()

    def webhook(self, sender: str, outcome: str) -> None:
        self.webhooks.labels(sender, outcome).inc()

    def reloaded(self, result: str) -> None:
        """The reloader's count: applied, unchanged or refused."""
        self.reloads.labels(result).inc()

    def heroku_call(self, endpoint: str, status: int | None, remaining: int | None) -> None:
        """The Platform API client's observer: one call per attempt."""
        self.heroku_calls.labels(endpoint, str(status) if status else "none").inc()
        if remaining is not None:
            self.rate_limit.set(remaining)

    def plan(self, service: str, plan: Plan | None) -> None:
        """Gate states from a reconcile's plan: the worst state of each gate over its pairs."""
        worst: dict[str, GateState] = {}
        for candidate in plan.candidates if plan else ():
            for result in candidate.gates:
                seen = worst.get(result.name)
                if seen is None or _WORST[result.state] > _WORST[seen]:
                    worst[result.name] = result.state
        before = self._worst.get(service)
        if before == worst:  # most reconciles change no gate's state: ~24 series untouched
            return
        for name in (before or {}).keys() - worst.keys():
            for state in GateState:
                self.gates.remove(service, name, state.value)
        for name, current in worst.items():
            for state in GateState:
                self.gates.labels(service, name, state.value).set(state is current)
        self._worst[service] = worst

    def forget(self, service: str) -> None:
        """A service left the services file: its gate series go too."""
        self.plan(service, None)
        self._worst.pop(service, None)

    def heard(self, last: Mapping[str, datetime], now: datetime) -> None:
        for source, at in last.items():
            self.signal_age.labels(source).set(max(0.0, (now - at).total_seconds()))
