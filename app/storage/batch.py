"""Commands from several readers in one round trip, each answered through a typed handle.

A round trip that goes out anyway (taking a service's lock, releasing it) can carry reads
and writes of other modules: each adds its commands with `Batch.add` and keeps the `Reply`
it gets back, whose `value` is its own answer, parsed, once the batch is sent. So no module
counts another's replies: the batch alone knows where each reader's replies begin.

A batch keeps what to queue, not a pipeline: it is queued when it is sent, behind a script
when it rides with one (`send_after`), and queued again should Redis have forgotten the
script (`app.storage.client.script_first` sends the pipeline twice then).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from redis.commands.core import AsyncScript

from app.storage.client import Client, Pipe, script_first

T = TypeVar("T")
_UNSENT = object()


class Reply(Generic[T]):
    """One reader's answer in a batch: its replies, parsed when first asked for."""

    def __init__(self, parse: Callable[[list[Any]], T]) -> None:
        self._parse = parse
        self._replies: list[Any] | None = None
        self._value: Any = _UNSENT

    @property
    def value(self) -> T:
        """The answer; parsed here, not as the batch is filled, so a reply that cannot be
        parsed fails its reader, never the round trip that carried it (a lock's acquire)."""
        if self._value is _UNSENT:
            if self._replies is None:
                raise RuntimeError("the batch holding this reply was not sent")
            self._value = self._parse(self._replies)
        return self._value  # type: ignore[no-any-return]

    def _fill(self, replies: list[Any]) -> None:
        self._replies, self._value = replies, _UNSENT


@dataclass
class _Entry:
    queue: Callable[[Pipe], object]
    reply: Reply[Any]


class Batch:
    """Commands to send together; `Reply` handles to what each reader asked."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._counts: list[int] = []  # the commands each entry queued, the last time

    def __bool__(self) -> bool:
        return bool(self._entries)

    def add(self, queue: Callable[[Pipe], object], parse: Callable[[list[Any]], T]) -> Reply[T]:
        """`queue` puts a reader's commands on the pipeline; `parse` makes its answer of their
        replies, in order."""
        reply: Reply[T] = Reply(parse)
        self._entries.append(_Entry(queue, reply))
        return reply

    def queue(self, pipe: Pipe) -> None:
        """Put every reader's commands on `pipe`, after what is on it already."""
        self._counts = []
        for entry in self._entries:
            before = len(pipe)
            entry.queue(pipe)
            self._counts.append(len(pipe) - before)

    def fill(self, replies: Sequence[Any]) -> None:
        """Hand each reader its replies, from those to the commands `queue` put on."""
        start = 0
        for entry, count in zip(self._entries, self._counts, strict=True):
            entry.reply._fill(list(replies[start : start + count]))
            start += count

    async def send(self, client: Client) -> None:
        """In a round trip of its own."""
        async with client.pipeline(transaction=False) as pipe:
            self.queue(pipe)
            self.fill(await pipe.execute())

    async def send_after(
        self, client: Client, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]
    ) -> Any:
        """Behind `script`, in its round trip: the script's reply (the batch's are handed out)."""
        first, *replies = await script_first(client, script, keys, args, self.queue)
        self.fill(replies)
        return first
