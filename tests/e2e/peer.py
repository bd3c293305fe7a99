"""A programmable HTTP peer for the e2e tests: it answers like GitHub, Librato, a status page
or a CI URL, as the test tells it, and remembers what it was asked.

`python -m tests.e2e.peer --port N` serves plain HTTP/1.1 (one request per connection) on
127.0.0.1. The control API lives under `/_peer/`; every other request is answered from the
answers set there (404 `{"message": "Not Found"}`, GitHub's shape, when none is set).
It is written on asyncio streams rather than a web framework so that it can also misbehave:
hang without answering (until the client gives up or the answers change), or close the
connection without a word. `Peer` drives it.
"""

import argparse
import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import httpx

CONTROL = "/_peer/"
ANY = "*"  # an answer for every method of its path
MODES = ("answer", "hang", "down")
KEEP = 1000  # requests remembered, oldest dropped first
HEAD_LIMIT = 64 * 1024
NOT_FOUND = {"message": "Not Found"}
Mode = Literal["answer", "hang", "down"]


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    mode: str = "answer"  # hang: never answer; down: close the connection without answering


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]  # names lower-cased, the last value of a repeated one
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    def json(self) -> dict[str, Any]:
        text = self.body.decode(errors="replace")
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return {
            "method": self.method,
            "path": self.path,
            "target": self.target,
            "query": dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True)),
            "headers": self.headers,
            "body": text,
            "json": parsed,
            "at": time.time(),
        }


@dataclass
class World:
    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)
    seen: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEEP))
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # set (and replaced) on change

    def change(self) -> None:
        """Requests hanging on the old answers end now, without an answer."""
        self.changed.set()
        self.changed = asyncio.Event()

    def answer_for(self, method: str, path: str) -> Answer:
        found = self.answers.get((method, path)) or self.answers.get((ANY, path))
        if found is not None:
            return found
        return Answer(404, {"Content-Type": "application/json"}, json.dumps(NOT_FOUND).encode())

    def control(self, request: Request) -> tuple[int, Any]:
        """The `/_peer/` API: (status, JSON body)."""
        name = request.path.removeprefix(CONTROL)
        query = dict(parse_qsl(urlsplit(request.target).query))
        if (request.method, name) == ("GET", "health"):
            return 200, {"ok": True}
        if (request.method, name) == ("POST", "reset"):
            self.answers.clear()
            self.seen.clear()
            self.change()
            return 200, {"ok": True}
        if (request.method, name) == ("GET", "requests"):
            path = query.get("path")
            return 200, {"requests": [r for r in self.seen if path in (None, r["path"])]}
        if (request.method, name) == ("GET", "answers"):
            return 200, {"answers": [{"method": m, "path": p} for m, p in self.answers]}
        if (request.method, name) == ("POST", "answers"):
            try:
                key, answer = _parse_answer(json.loads(request.body))
            except (ValueError, TypeError, KeyError) as error:
                return 422, {"detail": f"bad answer: {error}"}
            self.answers[key] = answer
            self.change()
            return 200, {"method": key[0], "path": key[1], "status": answer.status}
        if (request.method, name) == ("DELETE", "answers"):
            self.answers.pop((query.get("method", "GET").upper(), query.get("path", "")), None)
            self.change()
            return 200, {"ok": True}
        return 404, {"detail": f"no control {request.method} {request.path}"}


def _parse_answer(spec: Mapping[str, Any]) -> tuple[tuple[str, str], Answer]:
    path = spec["path"]
    if not isinstance(path, str) or not path.startswith("/") or path.startswith(CONTROL):
        raise ValueError("path must start with / and not with /_peer/")
    mode = spec.get("mode", "answer")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    headers = {str(k): str(v) for k, v in (spec.get("headers") or {}).items()}
    if spec.get("json") is not None:
        body = json.dumps(spec["json"]).encode()
        headers.setdefault("Content-Type", "application/json")
    else:
        body = str(spec.get("body") or "").encode()
    status = int(spec.get("status", 200))
    return (str(spec.get("method", "GET")).upper(), path), Answer(status, headers, body, mode)


async def _read(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    line, *fields = head.decode("latin-1").split("\r\n")
    method, target, _version = line.split(" ", 2)
    headers = {}
    for item in fields:
        if ":" in item:
            name, value = item.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length") or 0)
    body = await reader.readexactly(length) if length else b""
    return Request(method.upper(), target, headers, body)


async def _first(*waits: Any) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()


def _response(status: int, headers: Mapping[str, str], body: bytes) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    lines = [f"HTTP/1.1 {status} {phrase}".rstrip()]
    given = {k.lower() for k in headers}
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("content-length",)]
    lines += [f"Content-Length: {len(body)}"]
    lines += [] if "connection" in given else ["Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def serve(world: World) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read(reader)
            if request is None:
                return
            if request.path.startswith(CONTROL):
                status, payload = world.control(request)
                json_type = {"Content-Type": "application/json"}
                writer.write(_response(status, json_type, json.dumps(payload).encode()))
                await writer.drain()
                return
            world.seen.append(request.json())
            answer = world.answer_for(request.method, request.path)
            if answer.mode == "down":
                writer.transport.abort()  # no answer at all, not even a polite close
                return
            if answer.mode == "hang":  # until the client gives up, or the answers change
                await _first(reader.read(), world.changed.wait())
                writer.transport.abort()
                return
            writer.write(_response(answer.status, answer.headers, answer.body))
            await writer.drain()
        except (ConnectionError, ValueError):
            pass  # a broken or garbled request: nothing to record
        finally:
            with contextlib.suppress(ConnectionError):
                writer.close()

    return handle


async def main(port: int) -> None:
    server = await asyncio.start_server(serve(World()), "127.0.0.1", port, limit=HEAD_LIMIT)
    async with server:
        await server.serve_forever()


class Peer:
    """The test's side: tell the peer process what to answer, read what it was asked."""

    def __init__(self, url: str) -> None:
        self.url = url

    def answer(
        self,
        method: str,
        path: str,
        status: int = 200,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        body: str | None = None,
        mode: Mode = "answer",
    ) -> None:
        spec = {"method": method, "path": path, "status": status, "json": json, "body": body}
        spec.update(headers=dict(headers or {}), mode=mode)
        self._control("POST", "answers", json=spec)

    def hang(self, path: str, method: str = ANY) -> None:
        """Requests to `path` get no answer until the client times out."""
        self.answer(method, path, mode="hang")

    def down(self, path: str, method: str = ANY) -> None:
        """Requests to `path` find the connection closed without an answer."""
        self.answer(method, path, mode="down")

    def forget(self, path: str, method: str = "GET") -> None:
        self._control("DELETE", "answers", params={"method": method, "path": path})

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        """What the peer received, oldest first, all paths or one (control calls excluded)."""
        params = {"path": path} if path else {}
        return self._control("GET", "requests", params=params)["requests"]  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._control("POST", "reset")

    def _control(self, method: str, name: str, **kwargs: Any) -> Any:
        response = httpx.request(method, f"{self.url}{CONTROL}{name}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
