"""Fixtures of the hostile tests: Hypothesis's settings, Cascade with every secret set.

Hypothesis runs derandomized (the same inputs on every run, so CI is never flaky) with no
example database; CASCADE_HOSTILE_EXAMPLES scales how many inputs each property tries.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from app.config.settings import Settings
from app.main import create_app
from tests.e2e.harness import Process, free_port, python
from tests.figures import Figure, record
from tests.hostile.senders import SERVICES, Sender
from tests.inprocess import Cascade, Start

EXAMPLES = int(os.environ.get("CASCADE_HOSTILE_EXAMPLES", "60"))
FIGURES = os.environ.get("CASCADE_FIGURES")  # read now: an in-process Cascade clears it
SECRETS = {
    "heroku_webhook_secret": "hostile-heroku-hmac-secret",
    "github_webhook_secret": "hostile-github-hmac-secret",
    "webhook_token": "hostile-shared-webhook-token",
}

settings.register_profile(
    "hostile",
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _openapi_paths() -> set[str]:
    return set(create_app(Settings(_env_file=None)).openapi()["paths"])


PATHS = _openapi_paths()


def landed(sender: Sender) -> bool:
    """The sender's route is in the app's OpenAPI: its module is written, not a placeholder."""
    return sender.path in PATHS


def senders(*chosen: Sender) -> list[object]:
    """`chosen` as parameters, each skipped while its route has not landed."""
    return [
        pytest.param(
            s,
            id=s.name,
            marks=pytest.mark.skipif(
                not landed(s), reason=f"{s.path} is not in the app's OpenAPI yet (being written)"
            ),
        )
        for s in chosen
    ]


@pytest.fixture
def services_file(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.toml"
    path.write_text(SERVICES)
    return path


@pytest.fixture
def start(start_cascade: Start, monkeypatch: pytest.MonkeyPatch) -> Start:
    """`start_cascade`, the figures file kept: starting clears every CASCADE_* variable."""
    if FIGURES:
        monkeypatch.setenv("CASCADE_FIGURES", FIGURES)
    return start_cascade


@pytest.fixture
async def hostile(start: Start, services_file: Path) -> Cascade:
    """Cascade in-process, on the sandbox, with every webhook secret set."""
    return await start(config_path=services_file, **SECRETS)


# Cascade as a real process ---------------------------------------------------------------

ENV_PREFIXES = ("CASCADE_", "HEROKU_", "GITHUB_", "LIBRATO_")
ENV_NAMES = ("REDIS_URL", "STATUS_API_URL", "PORT")


def process_env(**settings: str) -> dict[str, str]:
    """This environment without any Cascade setting, then `settings`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(ENV_PREFIXES) and k.upper() not in ENV_NAMES
    }
    return env | {"PYTHONUNBUFFERED": "1", "CASCADE_LOG_FORMAT": "json"} | settings


def cascade_process(
    tmp: Path, access_log: bool = False, port: int | None = None, **settings: str
) -> Process:
    """`uvicorn app.main:app` as the Procfile runs it (access log and all, when asked)."""
    port = port or free_port()
    argv = python("-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port))
    if not access_log:
        argv.append("--no-access-log")
    env = process_env(
        CASCADE_DATA_DIR=str(tmp / "data"),
        CASCADE_TICK_SECONDS="3600",
        CASCADE_RESYNC_SECONDS="3600",
        CASCADE_SANDBOX_DEPLOY_SECONDS="0",
        **settings,
    )
    return Process("cascade", argv, env, port, tmp / "cascade.log", "/readyz")


# figures ---------------------------------------------------------------------------------


@dataclass
class Tally:
    """Figures of a module's parametrized tests, summed into one row per check."""

    rows: dict[tuple[str, str], tuple[Figure, list[str]]] = field(default_factory=dict)

    def add(self, figure: Figure, part: str = "") -> None:
        """Add `figure` to the row of its (area, check); `part` says which case it was."""
        key = (figure.area, figure.check)
        old, parts = self.rows.get(key, (replace(figure, cases=0, five_xx=0, secrets=0), []))
        summed = replace(
            old,
            cases=old.cases + figure.cases,
            five_xx=old.five_xx + figure.five_xx,
            secrets=old.secrets + figure.secrets,
        )
        self.rows[key] = summed, [*parts, part] if part else parts

    def record(self) -> None:
        for figure, parts in self.rows.values():
            note = "; ".join(filter(None, [figure.note, *parts]))
            record(replace(figure, note=note))


@pytest.fixture(scope="module")
def tally() -> Iterator[Tally]:
    collected = Tally()
    yield collected
    collected.record()
