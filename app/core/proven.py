"""A commit that proved itself: when a source stage has moved on to a commit younger than the
next stage's `min_age`, the newest release of the source whose commit did run that long there
moves on instead, pinned by its release id (`POST /pipeline-promotions` takes any release of
the source that Heroku still holds). Merges faster than a soak then no longer starve the
stages after it.

Heroku keeps a release's artifact while it is among the app's last `KEPT_RELEASES` releases or
younger than `KEPT_FOR` (since 2025-10-01); past both, it can no longer be promoted.
"""

from datetime import datetime, timedelta

from app.core.models import Release

KEPT_RELEASES = 20
KEPT_FOR = timedelta(days=30)


def expired(release: Release, newest_version: int, now: datetime) -> bool:
    """Whether Heroku may have deleted the release's artifact: more than `KEPT_RELEASES` releases
    behind the app's newest and older than `KEPT_FOR` (by Heroku's `created_at`)."""
    return newest_version - release.version > KEPT_RELEASES and now - release.created_at > KEPT_FOR
