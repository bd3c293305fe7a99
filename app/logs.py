"""Logging: one JSON object per line in production, readable `key=value` lines on a terminal.

The stdlib `logging` with our own two formatters, rather than structlog: every module here,
and uvicorn, APScheduler and httpx, already log through the stdlib, so one root handler
formats every line and one place redacts secrets. The context of a line (request id, webhook
delivery id, service, commit) travels in a contextvar, bound where it is learned: the
request middleware, the webhook route, the reconcile, the promotion.
"""

import json
import logging
import random
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REDACTED = "[redacted]"
MIN_SECRET = 6  # shorter values would blank out ordinary words
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,200}")
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")
_context: ContextVar[Mapping[str, str]] = ContextVar(
    "cascade_log_context", default=MappingProxyType({})
)


_TOLD: ContextVar[bool] = ContextVar("cascade_request_told", default=False)


def request_told() -> None:
    """The current request logged a line that says what its access line would (a webhook
    delivery's: sender, outcome, status): uvicorn's access line for it is left out."""
    _TOLD.set(True)


class UntoldRequests(logging.Filter):
    """On uvicorn's access logger: a line only for requests that logged none of their own,
    so a delivery is one line, not two (each line costs a format and a write)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _TOLD.get()


def bind(**fields: str | None) -> None:
    """Add fields to every later line of the current task (a request, a worker step)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})


@contextmanager
def scope(**fields: str | None) -> Iterator[None]:
    """Add fields to the lines logged inside the block only."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


def current() -> Mapping[str, str]:
    return _context.get()


def fields(**values: object) -> dict[str, Any]:
    """`extra=` for one line: structured fields beside the message (JSON keys, key=value)."""
    return {"fields": {k: v for k, v in values.items() if v is not None}}


class Redactor:
    """The guard every line passes: known secret values and credential shapes become [redacted]."""

    # Each shape is (what names the credential)(its value): only the value is replaced.
    _PATTERNS = (
        re.compile(r"(?i:\b(bearer\s+)([^\s\"',;]+))"),
        re.compile(r"(://[^:/@\s]*:)([^@/\s]+)(?=@)"),
        re.compile(r"(?i:\b((?:token|secret|password|api_key|apikey)=)([^\s&\"',;]+))"),
    )
    # A value that is no credential: one already redacted, or a hint's placeholder such as
    # `<CASCADE_WEBHOOK_TOKEN>`, with closing punctuation after it. Kept as it is, so a hint
    # reads the same however often it passes the guard, and `(?token=[redacted]).` keeps `).`.
    _KEPT = re.compile(rf"(?:{re.escape(REDACTED)}|<[A-Za-z][\w-]{{0,63}}>)[)\]}}.!?:]*")

    _ANY = re.compile("|".join(f"(?:{p.pattern})" for p in _PATTERNS))

    def __init__(self) -> None:
        self._secrets: list[str] = []

    def add(self, *values: str | None) -> None:
        for value in values:
            if value and len(value) >= MIN_SECRET and value not in self._secrets:
                self._secrets.append(value)
        self._secrets.sort(key=len, reverse=True)  # a secret containing another goes first

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        # Every credential shape needs "=", "://" or "bearer": text with none of them (most
        # fields of most lines) skips the search, which costs ~80 ns a character.
        if (
            text.isascii()
            and "=" not in text
            and "://" not in text
            and "bearer" not in text.lower()
        ):
            return text
        if self._ANY.search(text) is None:  # most lines: one search instead of three subs
            return text
        for pattern in self._PATTERNS:
            text = pattern.sub(self._value, text)
        return text

    @classmethod
    def _value(cls, match: re.Match[str]) -> str:
        if cls._KEPT.fullmatch(match[2]):
            return match[0]
        return match[1] + REDACTED

    def deep(self, value: Any) -> Any:
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.deep(v) for v in value]
        return value


REDACT = Redactor()


def secret_values(settings: BaseModel) -> list[str]:
    """Every secret of a settings tree: each SecretStr, and a password inside a secret URL."""
    found = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and value.get_secret_value():
            text = value.get_secret_value()
            found.append(text)
            try:
                password = urlsplit(text).password
            except ValueError:
                password = None
            if password:
                found.append(password)
    return found


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The context bound when the line was logged, then the line's own fields."""
    extra = getattr(record, "fields", None)
    return {**current(), **(extra if isinstance(extra, Mapping) else {})}


def _stamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: at, level, logger, message, the ids, then any other field."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "at": _stamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_record_fields(record))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(REDACT.deep(line), default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For people at a terminal: `time LEVEL logger: message key=value ...`."""

    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={_quoted(v)}" for k, v in _record_fields(record).items())
        head = f"{_stamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        text = f"{head}  {extra}" if extra else head
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return REDACT(text)


def _quoted(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c in text for c in ' "=') else text


def configure_logging(
    level: int | str = logging.INFO,
    fmt: str = "auto",
    secrets: Iterable[str | None] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Route every logger, uvicorn's too, to one handler on standard error; idempotent.

    `fmt` is json, text, or auto: text when the stream is a terminal. Calling it again
    (the app's lifespan, once settings are read) changes the format and adds secrets.
    """
    REDACT.add(*secrets)
    # No line shows where it was logged from, nor the thread or process: the record need
    # not look them up (the stdlib's own advice; finding the caller walks the stack).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "cascade", False)), None)
    if handler is None:
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.cascade = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    out = getattr(handler, "stream", None)
    terminal = bool(out is not None and hasattr(out, "isatty") and out.isatty())
    text = fmt == "text" or (fmt == "auto" and terminal)
    handler.setFormatter(TextFormatter() if text else JsonFormatter())
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in _UVICORN:  # uvicorn's own handlers would print plain text lines
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, UntoldRequests) for f in access.filters):
        access.addFilter(UntoldRequests())
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return handler


class RequestIds:
    """ASGI middleware: each request gets an id, bound to its log lines and sent back.

    Heroku's router sends `X-Request-ID`; it is kept when it looks like an id, so a line
    here can be matched with Heroku's router log. Otherwise a new one is made.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or ()
        given = next((v for k, v in headers if k == b"x-request-id"), b"").decode("latin-1")
        # An id need be unique, not secret: no system call for randomness (as uuid4 makes).
        request_id = given if _REQUEST_ID.fullmatch(given) else f"{random.getrandbits(128):032x}"
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        token = _context.set({**_context.get(), "request_id": request_id})
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _context.reset(token)
