"""Pure folds of news into the view Cascade keeps of each stage."""

from datetime import datetime, timedelta

from app.models import Release, ReleaseStatus, StageView

MAX_WEBHOOK_LAG = timedelta(minutes=10)


def fold_release(view: StageView, release: Release) -> StageView:
    """The stage after `release`; older or repeated news changes nothing."""
    current, pending = view.release, view.pending
    if release.status is ReleaseStatus.SUCCEEDED:
        if current is None or release.version >= current.version:
            current = release
        if pending is not None and pending.version <= release.version:
            pending = None
    elif release.status is ReleaseStatus.PENDING:
        newer_than_current = current is None or release.version > current.version
        if newer_than_current and (pending is None or release.version >= pending.version):
            pending = release
    elif pending is not None and pending.version == release.version:
        pending = None  # failed or expired: the stage keeps running what it ran
    return StageView(view.app, current, pending)


def arrival(release: Release, received_at: datetime | None) -> datetime:
    """When a commit counts as arrived, for the age gate only: never for which commit is
    newer (`app.order` decides that from release versions).

    A webhook's own timestamps are clamped to when it was received: one from
    the future, or replayed long after the fact, cannot open an age gate early.
    """
    if received_at is None:
        return release.created_at
    return min(max(release.created_at, received_at - MAX_WEBHOOK_LAG), received_at)
