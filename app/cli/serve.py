"""`cascade serve`: Cascade under uvicorn, refused before it starts when it could not run.

A bad services file or a port in use stops it with one line; Ctrl-C or SIGTERM is a
success, after uvicorn's graceful shutdown.
"""

import argparse
import contextlib
import signal
import socket
import sys
from types import FrameType

import uvicorn

from app.cli.remote import UNREACHABLE
from app.config.services import ConfigError, load_services
from app.config.settings import get_settings

GRACEFUL_SHUTDOWN_SECONDS = 10  # open streams may not eat Heroku's 30 s after SIGTERM


def serve(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        load_services(settings.config_path)  # refuse a bad file with its message alone
    except ConfigError as error:
        print(f"cascade: cannot start: {error}", file=sys.stderr)
        return UNREACHABLE
    port = args.port or settings.port
    try:
        _try_to_listen(args.host, port)
    except OSError as error:
        print(
            f"cascade: cannot start: cannot listen on {args.host}:{port} ({error.strerror}):"
            " is Cascade already running there? Stop it, or choose another port with --port",
            file=sys.stderr,
        )
        return UNREACHABLE  # as for a bad services file: it cannot start
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, _asked_to_stop)  # uvicorn calls it again once it has shut down
    with contextlib.suppress(_Stopped):  # a stop asked for is a success: no make "Error 130"
        uvicorn.run(
            "app.main:app",
            host=args.host,
            port=port,
            proxy_headers=True,
            log_config=None,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
    return 0


def _try_to_listen(host: str, port: int) -> None:
    """Raise OSError if `host:port` cannot be listened on, before Cascade starts: uvicorn
    binds only after the app's startup, so a second `cascade serve` on a port in use
    reconciled, and could promote, for the moment it lived. (Handing uvicorn the bound
    socket instead loses its "running on" line.)"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        probe.bind((host, port))


class _Stopped(BaseException):
    """Ctrl-C or SIGTERM reached `cascade serve`; like KeyboardInterrupt, no `except Exception`
    stops it on its way out (before uvicorn listens for signals, or after it has shut down)."""


def _asked_to_stop(signum: int, frame: FrameType | None) -> None:
    """uvicorn puts this handler back after its graceful shutdown and raises the signal again."""
    raise _Stopped
