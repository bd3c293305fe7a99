"""What a process keeps of Redis's immutable or compare-and-set data, and how replies read."""

from collections import OrderedDict
from datetime import UTC, datetime
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


STAGES_KEPT = 20_000  # stage values kept per process, to fold without reading (~10 MB)
ARTIFACTS_KEPT = 20_000  # build commits kept per process (~3 MB)


class Kept(OrderedDict[K, V]):
    """What this process keeps of immutable or compare-and-set data: the oldest go first.

    An OrderedDict, since dropping a plain dict's first entry again and again makes finding
    the next first entry slower each time (a tick over 1,000 services spent 0.2 s on it).
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def keep(self, key: K, value: V) -> V:
        self[key] = value
        if len(self) > self.size:
            self.popitem(last=False)
        return value


def moment(score: bytes | str | float) -> datetime:
    return datetime.fromtimestamp(float(score), UTC)


def text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
