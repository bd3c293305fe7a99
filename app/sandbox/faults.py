"""The misbehaviour a test can set on the sandbox (`/_sandbox/faults`), and Heroku's rate pool.

Errors and delays meet the next requests that match a method and path prefix, each used up
by one; the rest (a slow promotion answer, failing targets, held releases) are read by
`app.sandbox.Sandbox` where it acts. `RatePool` is Heroku's per-account 4500-call pool.
"""

import time
from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from app.sandbox.resources import Json

F = TypeVar("F", bound="_Fault")


@dataclass
class RatePool:
    """Heroku's per-account pool: 4500 calls, refilled at about 75 a minute."""

    size: float = 4500.0
    per_second: float = 75 / 60
    tokens: float = 4500.0
    at: float = field(default_factory=time.monotonic)

    def remaining(self) -> int:
        now = time.monotonic()
        self.tokens = min(self.size, self.tokens + (now - self.at) * self.per_second)
        self.at = now
        return int(self.tokens)

    def take(self) -> bool:
        if self.remaining() < 1:
            return False
        self.tokens -= 1
        return True


class _Fault(BaseModel):
    """Meets the next `count` requests matching method and path prefix."""

    model_config = ConfigDict(extra="forbid")
    method: str = "*"
    path_prefix: str = "/"
    count: int = Field(1, ge=1)

    def matches(self, method: str, path: str) -> bool:
        return self.method.upper() in ("*", method) and path.startswith(self.path_prefix)


class ErrorFault(_Fault):
    """Answer with `status`. With `after`, the request is carried out first and only its
    answer is the error: the caller cannot tell whether anything happened."""

    status: int = Field(500, ge=400, le=599)
    after: bool = False


class DelayFault(_Fault):
    """Hold the request `seconds` before carrying it out: a slow Platform API, or one a caller
    gives up on (timeouts). With `after`, it is carried out at once and only its answer is
    held: a caller that gives up cannot tell that it happened."""

    seconds: float = Field(ge=0)
    after: bool = False


class FaultsRequest(BaseModel):
    """`POST /_sandbox/faults`: sets the fields it names, appends its `errors` and `delays`."""

    model_config = ConfigDict(extra="forbid")
    promotion_response_delay: float | None = Field(None, ge=0)
    fail_promotions: int | None = Field(None, ge=0)
    fail_targets: list[str] | None = None
    errors: list[ErrorFault] = []
    delays: list[DelayFault] = []
    rate_limit_remaining: int | None = Field(None, ge=0, le=4500)
    hold_releases: bool | None = None


@dataclass
class Faults:
    """The misbehaviour in force; `DELETE /_sandbox/faults` replaces it with a fresh one."""

    promotion_response_delay: float = 0.0  # the promotion exists at once; its answer waits
    fail_promotions: int = 0  # the next N promotions' targets fail
    fail_targets: list[str] = field(default_factory=list)  # apps whose next target fails
    errors: list[ErrorFault] = field(default_factory=list)
    delays: list[DelayFault] = field(default_factory=list)
    hold_releases: bool = False  # releases stay pending until let go

    def error_for(self, method: str, path: str) -> ErrorFault | None:
        return _take(self.errors, method, path)

    def delay_for(self, method: str, path: str) -> DelayFault | None:
        return _take(self.delays, method, path)

    def json(self) -> Json:
        errors = [e.model_dump() for e in self.errors]
        return {**vars(self), "errors": errors, "delays": [d.model_dump() for d in self.delays]}


def _take(faults: list[F], method: str, path: str) -> F | None:
    """The first fault meeting this request, used up by one."""
    for fault in faults:
        if fault.matches(method, path):
            fault.count -= 1
            if fault.count == 0:
                faults.remove(fault)
            return fault
    return None
