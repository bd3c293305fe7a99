"""What the gates know about the world besides Heroku: pure values, read once per snapshot.

Each signal has a module of values here (pure: no I/O), a Redis view and fallback
reader in `app.health`, its senders in `app.webhooks` and its gate in `app.gates`.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from app.signals.alerts import AlertsView
from app.signals.freeze import FreezeWindow
from app.signals.github import GitHubFacts
from app.signals.incidents import IncidentsView
from app.signals.urls import UrlCheck


@dataclass(frozen=True)
class Signals:
    """One service's signals at snapshot time; an empty value means "not gathered"."""

    github: Mapping[tuple[str, str], GitHubFacts] = field(default_factory=dict)
    """Keyed by (source commit, target commit) of each pair whose commits differ."""
    alerts: AlertsView | None = None  # None: the service lists no alerts
    incidents: IncidentsView | None = None  # None: no status source applies to the service
    urls: tuple[UrlCheck, ...] = ()  # one per configured URL
    freezes: tuple[FreezeWindow, ...] = ()  # the freeze windows in force for the service now
