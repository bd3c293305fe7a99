"""Heroku's JSON bodies, in the shapes of its published schema, read into values.

Pure functions: a key missing or of the wrong type raises, and `app.heroku.transport.shaped`
turns that into a `HerokuError` naming what was read. A release's commit is not in its body;
`app.heroku.client` resolves it from the build (`builds`) and hands it to `release`.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.core.models import Artifact, ArtifactKind, Release, ReleaseStatus
from app.core.order import rolled_back_to


@dataclass(frozen=True)
class Pipeline:
    id: str
    name: str


@dataclass(frozen=True)
class Coupling:
    app_id: str
    stage: str  # development|staging|production|test|review


@dataclass(frozen=True)
class AppWebhook:
    """An app webhook subscription as Heroku lists it; Heroku never shows its secret."""

    id: str
    url: str
    include: tuple[str, ...]
    level: str  # notify|sync


@dataclass(frozen=True)
class PromotionTarget:
    app_id: str
    status: str  # pending|succeeded|failed
    release_id: str | None
    error_message: str | None


def timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def artifact(d: Mapping[str, Any]) -> Artifact | None:
    """The build a release body runs: its slug (Cedar), else its OCI image (Fir), else none
    (the container stack, or a release before any deploy)."""
    if d["slug"]:
        return Artifact(ArtifactKind.SLUG, d["slug"]["id"])
    for item in d.get("artifacts") or ():
        if item["type"] == ArtifactKind.OCI_IMAGE:
            return Artifact(ArtifactKind.OCI_IMAGE, item["id"])
    return None


def builds(ds: Sequence[Mapping[str, Any]]) -> dict[Artifact, str]:
    """Each distinct build of the release bodies, and an app (id) it was released on."""
    return {built: d["app"]["id"] for d in ds if (built := artifact(d)) is not None}


def release(d: Mapping[str, Any], commits: Mapping[Artifact, str | None]) -> Release:
    built = artifact(d)
    return Release(
        id=d["id"],
        app=d["app"]["name"],
        version=int(d["version"]),
        status=ReleaseStatus(d["status"]),
        commit=commits[built] if built else None,
        created_at=timestamp(d["created_at"]),
        app_id=d["app"]["id"],
        slug_id=built.id if built and built.kind is ArtifactKind.SLUG else None,
        oci_image_id=built.id if built and built.kind is ArtifactKind.OCI_IMAGE else None,
        rollback_of=rolled_back_to(d.get("description")),
    )


def image_commit(data: Any, image_id: str) -> str | None:
    """The commit of the OCI image `image_id`: the schema answers a list of the images that
    match the identifier; a lone object is read too. No commit, or no such image: None."""
    for image in data if isinstance(data, list) else [data]:
        if image["id"] == image_id:
            commit = image.get("commit")
            if commit is not None and not isinstance(commit, str):
                raise TypeError(f"commit is {commit!r}")
            return commit or None
    return None


def pipeline(d: Mapping[str, Any]) -> Pipeline:
    return Pipeline(id=d["id"], name=d["name"])


def coupling(d: Mapping[str, Any]) -> Coupling:
    return Coupling(app_id=d["app"]["id"], stage=d["stage"])


def target(d: Mapping[str, Any]) -> PromotionTarget:
    return PromotionTarget(
        app_id=d["app"]["id"],
        status=d["status"],
        release_id=d["release"]["id"] if d.get("release") else None,
        error_message=d.get("error_message"),
    )


def webhook(d: Mapping[str, Any]) -> AppWebhook:
    return AppWebhook(id=d["id"], url=d["url"], include=tuple(d["include"]), level=d["level"])
