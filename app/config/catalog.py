"""The services file this process runs now: one `Catalog`, swapped whole by a reload.

Everyone who needs the current configuration holds the catalog (never a copy of the file
it had at start), so a reload is one assignment here and nothing else is patched.
"""

from dataclasses import dataclass
from datetime import datetime

from app.config.services import Freeze, Service, ServicesConfig


@dataclass(frozen=True)
class ConfigProblem:
    """The last refused reload of this process: kept so `/status`, the page and `cascade status`
    show it to whoever edits the file, not only the log (cleared by the next good reload)."""

    message: str  # the loader's message: the file, the service and the field
    path: str  # the services file that was refused
    at: datetime  # when it was refused (UTC)


class Catalog:
    """The live services config, and the last reload refused (if one was since a good one)."""

    def __init__(self, config: ServicesConfig) -> None:
        self.config = config
        self.problem: ConfigProblem | None = None

    @property
    def services(self) -> tuple[Service, ...]:
        return self.config.services

    @property
    def freezes(self) -> tuple[Freeze, ...]:
        return self.config.freezes

    def get(self, name: str) -> Service | None:
        return self.config.get(name)

    def names(self) -> list[str]:
        """Every service's name, in the file's order (what the tick enqueues)."""
        return [service.name for service in self.config.services]

    def swap(self, config: ServicesConfig) -> None:
        """A good file: it runs from now on, and the last refusal is over."""
        self.config, self.problem = config, None

    def refused(self, problem: ConfigProblem) -> None:
        """A bad file: the running one stays; the problem is shown until a good one comes."""
        self.problem = problem

    def accepted(self) -> None:
        """A good file identical to the running one: nothing to swap, the refusal is over."""
        self.problem = None
