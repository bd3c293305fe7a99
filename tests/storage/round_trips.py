"""Count Redis round trips: each command sent alone, each pipeline sent (what either holds)."""

from typing import Any

import pytest
from redis.asyncio.client import Pipeline, Redis


def count_round_trips(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """From now on, each round trip as the list of its commands' names."""
    trips: list[list[str]] = []
    alone, piped = Redis.execute_command, Pipeline.execute

    async def command(self: Redis, *args: Any, **options: Any) -> Any:
        trips.append([str(args[0])])
        return await alone(self, *args, **options)

    async def execute(self: Pipeline, raise_on_error: bool = True) -> list[Any]:
        trips.append([str(c[0][0]) for c in self.command_stack])
        return await piped(self, raise_on_error)

    monkeypatch.setattr(Redis, "execute_command", command)
    monkeypatch.setattr(Pipeline, "execute", execute)
    return trips
