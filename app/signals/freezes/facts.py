"""Values of freeze windows, part of the allow gate."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class FreezeWindow:
    """One `[[freeze]]` entry in force: from its cron's start for its duration."""

    reason: str
    started_at: datetime
    ends_at: datetime
    global_: bool  # it holds every service, not only some
