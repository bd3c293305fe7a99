"""Run by `bench.instructions` (under valgrind): deliveries through Cascade's ASGI app.

`python -P bench/deliver.py PATH DELIVERIES_FILE`, with the tree under test on the path
(`-P`: not this folder, whose `profile.py` would hide the standard library's). It imports
nothing from `bench` (that tree may have a `bench` of its own): the signed deliveries come
from the file, one `(body, headers)` per line; the settings from the environment. Eight
at a time, as the intake's wrk connections; every reconcile they ask for is done before
it exits.
"""

import ast
import asyncio
import logging
import os
import sys
from typing import IO, Any

from app.main import create_app

CONCURRENT = 8


async def main(path: str, deliveries: list[tuple[bytes, dict[str, str]]], sink: IO[str]) -> None:
    app = create_app()
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        await runtime.queue.join()
        logging.getLogger().handlers[0].stream = sink  # formatted and written, to nowhere
        gate = asyncio.Semaphore(CONCURRENT)

        async def one(body: bytes, headers: dict[str, str]) -> None:
            async with gate:
                status = await post(app, path, body, headers)
            if status >= 300:
                raise RuntimeError(f"a delivery was answered {status}")

        await asyncio.gather(*(one(body, headers) for body, headers in deliveries))
        await runtime.queue.join()


async def post(app: Any, path: str, body: bytes, headers: dict[str, str]) -> int:
    """One POST through the app, as uvicorn hands a request over; the answer's status."""
    sent: list[dict[str, Any]] = []
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if given:
            await asyncio.Event().wait()  # the client never disconnects
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"content-length", str(len(body)).encode()), *raw],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    await app(scope, receive, send)
    return int(sent[0]["status"])


if __name__ == "__main__":
    where, listed = sys.argv[1], sys.argv[2]
    with open(listed, "rb") as lines:
        deliveries = [ast.literal_eval(line.decode()) for line in lines]
    with open(os.devnull, "w") as sink:
        asyncio.run(main(where, deliveries, sink))
