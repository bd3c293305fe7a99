"""The HTTP API's shapes (SPEC.md), as pydantic models so `/docs` documents them."""

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

UNTIL_FORMS = "an RFC 3339 time (2026-05-01T18:00:00Z) or a duration from now (30m, 2h, 1d)"


class Body(BaseModel):
    """A request body. A misspelt key is refused by name, with the keys that are accepted,
    before any other check: `{"reasn": ...}` is one problem, not an unknown and a missing."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        unknown = (
            [key for key in data if key not in cls.model_fields] if isinstance(data, dict) else []
        )
        if unknown:
            named = ", ".join(json.dumps(str(key)[:50]) for key in unknown[:10])
            which = f"an unknown key {named}" if len(unknown) == 1 else f"unknown keys {named}"
            accepted = ", ".join(cls.model_fields)
            raise ValueError(f"the body has {which}; the accepted keys are {accepted}")
        return data


class PauseIn(Body):
    reason: str = Field(min_length=1, max_length=500)
    # A string, read by the route: a duration counts from the server's clock, not the sender's.
    until: str | None = Field(
        None,
        description=f"when the pause ends by itself: {UNTIL_FORMS}; none: until lifted",
        examples=["2h", "2026-05-01T18:00:00Z"],
        max_length=100,
    )
    service: str | None = None
    by: str | None = Field(None, max_length=200)


class PauseOut(BaseModel):
    service: str | None
    reason: str
    by: str | None
    until: datetime | None
    created_at: datetime


class RetryIn(Body):
    service: str
    to: str
    # an auto-halt's suspect commit to clear; default: the one the stage before `to` runs
    commit: str | None = None


class ReleaseOut(BaseModel):
    id: str
    version: int
    created_at: datetime
    status: str
    commit: str | None


class StageOut(BaseModel):
    app: str
    commit: str | None
    release: ReleaseOut | None
    pending: ReleaseOut | None = None
    wave: int = 0  # the stage's place in the order: apps of one wave share it


class GateOut(BaseModel):
    name: str
    state: str
    reason: str
    opens_at: datetime | None = None


class PromotionOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    source: str = Field(alias="from")
    to: str
    commit: str | None
    state: str
    reason: str
    opens_at: datetime | None = None
    gates: list[GateOut]


class ServiceOut(BaseModel):
    name: str
    pipeline: str
    paused: PauseOut | None
    stages: list[StageOut]
    promotions: list[PromotionOut]
    problem: str | None = None


class SourceOut(BaseModel):
    """When a signal source was last heard, and whether that still counts (stale: unknown)."""

    signal: str
    source: str
    how: str
    last_heard: datetime | None
    stale: bool  # heard longer ago than `limit_seconds` (or never): its gates are unknown
    limit_seconds: float | None  # None: its age never makes a gate unknown


class ConfigProblemOut(BaseModel):
    """A services file this process refused to reload (`app.config.reload.ConfigProblem`)."""

    message: str = Field(description="why: the file, the service and the field, as at startup")
    path: str = Field(description="the services file that was refused")
    at: datetime = Field(description="when this process refused it")


class StatusOut(BaseModel):
    sandbox: bool
    dry_run: bool
    paused: PauseOut | None
    services: list[ServiceOut]
    problem: str | None = (
        None  # Redis lost Cascade's data: nothing is promoted (`app.storage.epoch`)
    )
    sources: list[SourceOut] = []
    config_problem: ConfigProblemOut | None = Field(
        None,
        description=(
            "the services file's last reload was refused, so the previous configuration still"
            " runs; null once a reload succeeds. Per process: each process reloads its own"
            " copy of the file, so with several dynos the answer is the answering one's"
        ),
    )


class EventOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    at: datetime
    kind: str
    service: str | None
    commit: str | None
    source: str | None = Field(alias="from")
    to: str | None
    message: str
    details: dict[str, Any] = {}


class EventsOut(BaseModel):
    events: list[EventOut]


class Accepted(BaseModel):
    detail: str


NOT_JSON = "the body is not JSON"
INVALID = "the request is not valid: the detail says what to change, one sentence a problem"


class StageDoraOut(BaseModel):
    """One stage's delivery metrics over the window (`app.core.dora`, docs/dora.md)."""

    stage: str
    deployments: int = Field(
        description="promotions that succeeded into the stage; the first stage: new commits"
    )
    lead_time_p50_seconds: float | None = Field(
        description="first run on the first stage → promoted here, median (nearest rank)"
    )
    lead_time_p90_seconds: float | None
    halts: int = Field(description="auto-halts of the stage (service.halted)")
    change_failure_rate: float | None = Field(description="halts ÷ deployments; null without any")
    time_to_restore_seconds: float | None = Field(
        description="a halt → the stage's next deployment of another commit, median"
    )
    open_halts: int = Field(description="halts not restored yet")


class ServiceDoraOut(BaseModel):
    name: str
    stages: list[StageDoraOut]


class DoraOut(BaseModel):
    days: int
    since: datetime
    services: list[ServiceDoraOut]
