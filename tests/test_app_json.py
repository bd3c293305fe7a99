"""The one-click Heroku deploy: `app.json`, the `Procfile` and what the buildpack installs.

Every variable of SPEC.md's environment table must be named in `app.json` with a
description, unless Heroku provides it (PORT) or the Redis add-on does (REDIS_URL).
"""

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from app.services import load_services
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT.parent / "shared" / "SPEC.md"  # beside the clone, where CI puts it
# SPEC.md's environment table, for a clone that has no shared/ beside it.
SPEC_VARIABLES = {
    "PORT", "REDIS_URL", "CASCADE_DATA_DIR", "CASCADE_CONFIG", "HEROKU_API_KEY",
    "HEROKU_API_URL", "GITHUB_TOKEN", "GITHUB_API_URL", "LIBRATO_USER", "LIBRATO_TOKEN",
    "LIBRATO_API_URL", "STATUS_API_URL", "HEROKU_WEBHOOK_SECRET", "GITHUB_WEBHOOK_SECRET",
    "CASCADE_WEBHOOK_TOKEN", "CASCADE_ADMIN_TOKEN", "CASCADE_TICK_SECONDS",
    "CASCADE_RESYNC_SECONDS", "CASCADE_DRY_RUN", "CASCADE_URL", "CASCADE_PUBLIC_URL",
}  # fmt: skip
PROVIDED = {"PORT": "Heroku sets it", "REDIS_URL": "the heroku-redis add-on sets it"}
SECRETS = ("HEROKU_WEBHOOK_SECRET", "CASCADE_ADMIN_TOKEN", "CASCADE_WEBHOOK_TOKEN")
NEEDED = ("HEROKU_API_KEY", "CASCADE_PUBLIC_URL", "CASCADE_CONFIG")


@pytest.fixture(scope="module")
def app_json() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / "app.json").read_text())  # valid JSON
    return loaded


def spec_variables() -> set[str]:
    """The names in SPEC.md's environment table (its first column, in backticks)."""
    if not SPEC.exists():
        return SPEC_VARIABLES
    table = SPEC.read_text().split("## Environment", 1)[1].split("\n## ", 1)[0]
    return {name for row in table.splitlines() for name in re.findall(r"`([A-Z_]+)`", row[:60])}


def test_the_spec_table_is_the_one_this_test_knows() -> None:
    assert spec_variables() == SPEC_VARIABLES


def test_every_spec_variable_is_named_with_a_description(app_json: dict[str, Any]) -> None:
    env = app_json["env"]
    for name in sorted(spec_variables()):
        if name in PROVIDED:
            assert name not in env, f"{name}: {PROVIDED[name]}"
            continue
        assert name in env, name
        assert len(env[name]["description"]) > 20, name
    assert set(env) <= spec_variables() | {f.upper() for f in Settings.model_fields}


def test_required_variables_and_generated_secrets(app_json: dict[str, Any]) -> None:
    env = app_json["env"]
    for name in NEEDED:
        assert env[name]["required"] is True, name
    for name in SECRETS:
        assert env[name]["generator"] == "secret", name
        assert "value" not in env[name]


def test_heroku_redis_provides_redis_url(app_json: dict[str, Any]) -> None:
    plans = [addon["plan"] for addon in app_json["addons"]]
    assert [p for p in plans if p.startswith("heroku-redis:")], plans
    assert all(addon.get("as", "REDIS") == "REDIS" for addon in app_json["addons"])  # REDIS_URL


def test_the_default_services_file_exists_and_loads(app_json: dict[str, Any]) -> None:
    path = ROOT / app_json["env"]["CASCADE_CONFIG"]["value"]
    assert load_services(path).services


def test_the_buildpack_installs_the_project_and_the_procfile_runs_it(
    app_json: dict[str, Any],
) -> None:
    assert app_json["buildpacks"] == [{"url": "heroku/python"}]
    # The buildpack installs uv.lock (with .python-version) and refuses a second package
    # manager's file beside it.
    assert not (ROOT / "requirements.txt").exists()
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (project,) = [p for p in lock["package"] if p["name"] == "cascade"]
    assert project["source"] == {"editable": "."}  # this project, with every dependency locked
    python = (ROOT / ".python-version").read_text().strip()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["requires-python"] == f">={python}"
    (web,) = (ROOT / "Procfile").read_text().splitlines()
    assert web.startswith("web: uvicorn app.main:app --host 0.0.0.0 --port $PORT")
    # Heroku sends SIGTERM and kills 30 s later: uvicorn must not wait longer on connections.
    match = re.search(r"--timeout-graceful-shutdown (\d+)", web)
    assert match is not None
    assert int(match[1]) + Settings.model_fields["shutdown_seconds"].default < 30
