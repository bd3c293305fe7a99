"""The commit each build (a slug, a Fir OCI image) was made from, cached in Redis and in the
process: builds are immutable. A part of `app.storage.store.Store`.
"""

from collections.abc import Callable

from app.core.models import Artifact
from app.storage import keys
from app.storage.client import Client, Pipe
from app.storage.kept import Kept, text


class ArtifactStore:
    redis: Client
    _artifacts: Kept[Artifact, str]

    async def get(self, artifact: Artifact) -> str | None:
        """CommitCache: builds are immutable; a commit is kept for `ARTIFACT_TTL`, then read
        again. Kept in this process too, so the re-read before a promotion waits on no Redis.
        """
        commit = self._artifacts.get(artifact) or text(
            await self.redis.get(keys.artifact(*artifact))
        )
        if commit is not None:
            self._artifacts.keep(artifact, commit)
        return commit

    async def put(self, artifact: Artifact, commit: str) -> None:
        self._artifacts.keep(artifact, commit)
        await self.redis.set(keys.artifact(*artifact), commit, ex=keys.ARTIFACT_TTL)


def caching(artifact: Artifact, commit: str) -> Callable[[Pipe], None]:
    """Queue the build's commit, to ride in another round trip (`put_release`'s)."""

    def cache(pipe: Pipe) -> None:
        pipe.set(keys.artifact(*artifact), commit, ex=keys.ARTIFACT_TTL)

    return cache
