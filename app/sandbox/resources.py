"""What the sandbox's simulated Heroku holds: pipelines, apps, releases, builds, promotions.

Mutable records, changed only by `app.sandbox.world.World` (which hands every change `now`),
and the refusals a Platform API call meets (`PlatformError`: Heroku's `{id, message}`).
A build is a slug on a Cedar pipeline, an OCI image on a Fir one (`SandboxPipeline.fir`),
and shows as neither on an app of the container stack.
"""

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

Json = dict[str, Any]

COUPLING_STAGES = ("development", "staging", "production")


class PlatformError(Exception):
    """A refused Platform API call, answered with Heroku's `{id, message}` body."""

    def __init__(self, status: int, error_id: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_id, self.message = status, error_id, message


def not_found(what: str) -> PlatformError:
    return PlatformError(404, "not_found", f"Couldn't find that {what}.")


def invalid(message: str) -> PlatformError:
    return PlatformError(422, "invalid_params", message)


def new_id() -> str:
    return str(uuid.uuid4())


def new_commit() -> str:
    return secrets.token_hex(20)


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class ReleaseStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class SandboxPipeline:
    """A pipeline to simulate: its name and (app name, coupling stage) pairs in order."""

    name: str
    apps: tuple[tuple[str, str], ...]
    fir: bool = False  # Fir generation: releases run OCI images, no slug
    container: frozenset[str] = frozenset()  # its apps on the container stack (Docker deploys)


@dataclass(eq=False)
class Slug:
    """A build: served as a slug, or as an OCI image on a Fir pipeline (same id)."""

    commit: str
    created_at: datetime
    id: str = field(default_factory=new_id)


@dataclass(eq=False)
class Pipeline:
    name: str
    created_at: datetime
    id: str = field(default_factory=new_id)
    apps: list["App"] = field(default_factory=list)
    fir: bool = False


@dataclass(eq=False)
class App:
    name: str
    stage: str
    pipeline: Pipeline
    created_at: datetime
    id: str = field(default_factory=new_id)
    coupling_id: str = field(default_factory=new_id)
    webhook_id: str = field(default_factory=new_id)  # its first api:release subscription
    host_suffix: str = field(default_factory=lambda: secrets.token_hex(6))
    releases: list["Release"] = field(default_factory=list)  # ascending by version
    webhooks: list["AppWebhook"] = field(default_factory=list)  # its webhook subscriptions
    container: bool = False  # on the container stack: its builds show as neither kind

    @property
    def build_kind(self) -> str | None:
        """How its releases name their build: "slug", "oci-image", or None (container)."""
        if self.container:
            return None
        return "oci-image" if self.pipeline.fir else "slug"

    @property
    def current(self) -> "Release | None":
        """What runs: the newest succeeded release (a failed or pending one changes nothing)."""
        done = [r for r in self.releases if r.status is ReleaseStatus.SUCCEEDED]
        return done[-1] if done else None


@dataclass(eq=False)
class AppWebhook:
    """A webhook subscription: where an app's events go, and the secret that signs them."""

    app: App
    url: str
    include: list[str]
    level: str
    secret: str
    created_at: datetime
    updated_at: datetime
    authorization: str | None = None
    id: str = field(default_factory=new_id)


@dataclass(eq=False)
class Release:
    app: App
    version: int
    slug: Slug
    description: str
    created_at: datetime
    updated_at: datetime
    status: ReleaseStatus = ReleaseStatus.PENDING
    target: "PromotionTarget | None" = None  # set when a promotion made it
    id: str = field(default_factory=new_id)

    @property
    def current(self) -> bool:
        return self.app.current is self


@dataclass(eq=False)
class PromotionTarget:
    """One app a promotion copies the slug to: no release until the copy is done."""

    app: App
    promotion: "Promotion"
    release: Release | None = None  # made when the slug has been copied (`World.land`)
    error_message: str | None = None
    id: str = field(default_factory=new_id)

    @property
    def status(self) -> str:
        return str(self.release.status) if self.release else str(ReleaseStatus.PENDING)


@dataclass(eq=False)
class Promotion:
    pipeline: Pipeline
    source: Release
    request: Json  # the POST body as received, for /_sandbox/promotions
    created_at: datetime
    updated_at: datetime
    targets: list[PromotionTarget] = field(default_factory=list)
    id: str = field(default_factory=new_id)

    @property
    def status(self) -> str:
        done = all(t.status != ReleaseStatus.PENDING for t in self.targets)
        return "completed" if done else "pending"
