"""The sandbox's own admin token, so pause, resume and retry work in the playground.

With no CASCADE_ADMIN_TOKEN, a sandbox server makes one random token per data directory,
keeps it in `<CASCADE_DATA_DIR>/admin-token` (mode 0600; reused on restart) and the
`cascade` command on the same machine reads it from there. Outside the sandbox there is
no such file: writes stay disabled until the operator sets a token.
"""

import logging
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr

from app.config.settings import Settings

log = logging.getLogger("cascade")
FILE_NAME = "admin-token"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def path(data_dir: Path) -> Path:
    return data_dir / FILE_NAME


def sandbox_token(data_dir: Path) -> SecretStr:
    """The token kept in `data_dir`, made there first if there is none (by one process)."""
    kept = read(data_dir)
    if kept is not None:
        return kept
    data_dir.mkdir(parents=True, exist_ok=True)
    draft = data_dir / f".{FILE_NAME}.{os.getpid()}"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32) + "\n")
    try:
        os.link(draft, path(data_dir))  # whole or absent; a process that got there first wins
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    made = read(data_dir)
    assert made is not None
    return made


def for_sandbox(settings: Settings) -> Settings:
    """`settings` with the sandbox's token when it runs without CASCADE_ADMIN_TOKEN."""
    if not settings.sandbox or settings.admin_token is not None:
        return settings
    token = sandbox_token(settings.data_dir)
    log.info(
        "sandbox: CASCADE_ADMIN_TOKEN not set, so writes need the token kept in %s"
        " (the cascade command on this machine reads it from there)",
        path(settings.data_dir).resolve(),
    )
    return settings.model_copy(update={"admin_token": token})


def read(data_dir: Path) -> SecretStr | None:
    try:
        token = path(data_dir).read_text().strip()
    except FileNotFoundError:
        return None
    return SecretStr(token) if token else None


def for_client(url: str, data_dir: Path) -> SecretStr | None:
    """The sandbox's token, for a client that talks to a Cascade on this machine only."""
    if urlsplit(url).hostname not in LOCAL_HOSTS:
        return None
    return read(data_dir)
