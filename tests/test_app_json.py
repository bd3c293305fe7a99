"""The one-click Heroku deploy: `app.json`, the `Procfile` and what the buildpack installs.

The README's configuration table is the list of settings: it names exactly the variables
`app.config.settings.Settings` reads, and `app.json` names every one of them with a description,
unless Heroku provides it (PORT, HEROKU_APP_DEFAULT_DOMAIN_NAME) or the Redis add-on does
(REDIS_URL). SPEC.md's environment table, the external contract, is a part of it.
"""

import json
import logging
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices

from app.config.services import load_services
from app.config.settings import Settings
from tests.inprocess import Start

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SPEC = ROOT.parent / "shared" / "SPEC.md"  # beside the clone, where CI puts it
# SPEC.md's environment table, for a clone that has no shared/ beside it.
SPEC_VARIABLES = {
    "PORT", "REDIS_URL", "CASCADE_DATA_DIR", "CASCADE_CONFIG", "HEROKU_API_KEY",
    "HEROKU_API_URL", "GITHUB_TOKEN", "GITHUB_API_URL", "LIBRATO_USER", "LIBRATO_TOKEN",
    "LIBRATO_API_URL", "STATUS_API_URL", "HEROKU_WEBHOOK_SECRET", "GITHUB_WEBHOOK_SECRET",
    "CASCADE_WEBHOOK_TOKEN", "CASCADE_ADMIN_TOKEN", "CASCADE_TICK_SECONDS",
    "CASCADE_RESYNC_SECONDS", "CASCADE_DRY_RUN", "CASCADE_URL", "CASCADE_PUBLIC_URL",
}  # fmt: skip
PROVIDED = {
    "PORT": "Heroku sets it",
    "REDIS_URL": "the heroku-redis add-on sets it",
    "HEROKU_APP_DEFAULT_DOMAIN_NAME": "Heroku's dyno metadata sets it",
}
SECRETS = ("HEROKU_WEBHOOK_SECRET", "CASCADE_ADMIN_TOKEN", "CASCADE_WEBHOOK_TOKEN")
NEEDED = ("HEROKU_API_KEY", "CASCADE_CONFIG")
# Values app.json sets on purpose where the default differs (a first deploy is a dry run).
CHOSEN = {"CASCADE_DRY_RUN": "true", "CASCADE_CONFIG": "examples/demo.toml"}


@pytest.fixture(scope="module")
def app_json() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((ROOT / "app.json").read_text())  # valid JSON
    return loaded


def spec_variables() -> set[str]:
    """The names in SPEC.md's environment table (its first column, in backticks)."""
    if not SPEC.exists():
        return SPEC_VARIABLES
    table = SPEC.read_text().split("## Environment", 1)[1].split("\n## ", 1)[0]
    return _first_column(table)


def table_variables() -> set[str]:
    """The names in the README's configuration table: the settings a user may give."""
    section = README.read_text().split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    table = "\n".join(line for line in section.splitlines() if line.startswith("|"))
    return _first_column(table)


def _first_column(table: str) -> set[str]:
    cells = [row.split("|")[1] for row in table.splitlines() if row.startswith("|")]
    return {name for cell in cells for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}


def settings_variables() -> dict[str, str]:
    """Each variable `Settings` reads, by name, and the field it fills."""
    found: dict[str, str] = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        name = alias.choices[0] if isinstance(alias, AliasChoices) else field.upper()
        found[str(name)] = field
    return found


def test_the_spec_table_is_the_one_this_test_knows() -> None:
    assert spec_variables() == SPEC_VARIABLES


def test_the_configuration_table_is_every_setting_and_only_those() -> None:
    table, settings = table_variables(), set(settings_variables())
    assert table - settings == set(), "in the README's table, not read by Settings"
    assert settings - table == set(), "read by Settings, missing from the README's table"
    assert spec_variables() <= table


def test_app_json_names_every_setting_of_the_table(app_json: dict[str, Any]) -> None:
    env = app_json["env"]
    for name in sorted(PROVIDED):
        assert name not in env, f"{name}: {PROVIDED[name]}"
    assert set(env) == table_variables() - set(PROVIDED)
    for name, variable in env.items():
        assert len(variable["description"]) > 20, name


def test_app_json_values_are_the_defaults_but_where_chosen(app_json: dict[str, Any]) -> None:
    """A value shown in Heroku's form is what Cascade would use anyway, unless chosen here."""
    fields = settings_variables()
    for name, variable in app_json["env"].items():
        if "value" not in variable:
            continue
        field = fields[name]
        given = Settings(_env_file=None, **{field: variable["value"]})  # type: ignore[arg-type]
        if name in CHOSEN:
            assert variable["value"] == CHOSEN[name], name
        else:
            assert getattr(given, field) == Settings.model_fields[field].default, name


def test_a_first_deploy_is_a_dry_run(app_json: dict[str, Any]) -> None:
    """With a real key, pipelines named like the demo's may exist in the user's account."""
    env = app_json["env"]
    assert env["CASCADE_DRY_RUN"]["value"] == "true"
    assert Settings(_env_file=None, dry_run=env["CASCADE_DRY_RUN"]["value"]).dry_run is True
    assert "dry run" in env["CASCADE_CONFIG"]["description"]


def test_required_variables_and_generated_secrets(app_json: dict[str, Any]) -> None:
    env = app_json["env"]
    for name in NEEDED:
        assert env[name]["required"] is True, name
    # Without it, Heroku's dyno metadata gives the app's domain (see below).
    assert env["CASCADE_PUBLIC_URL"]["required"] is False
    assert "runtime-dyno-metadata" in env["CASCADE_PUBLIC_URL"]["description"]
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


# The public URL from Heroku's dyno metadata -----------------------------------------------

DOMAIN = "cascade-1a2b3c4d5e6f.herokuapp.com"  # new apps' domains carry a random suffix


def test_without_a_public_url_heroku_s_domain_is_used() -> None:
    settings = Settings(_env_file=None, heroku_app_default_domain_name=DOMAIN)  # type: ignore[call-arg]
    assert settings.public_url == f"https://{DOMAIN}"
    assert settings.public_url_from_heroku
    assert settings.model_copy(update={"dry_run": True}).public_url_from_heroku


@pytest.mark.parametrize("given", [None, ""])
def test_without_either_there_is_no_public_url(given: str | None) -> None:
    settings = Settings(_env_file=None, public_url=given)  # type: ignore[call-arg]
    assert settings.public_url is None
    assert not settings.public_url_from_heroku


def test_a_public_url_that_is_set_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASCADE_PUBLIC_URL", "https://cascade.acme.test")
    monkeypatch.setenv("HEROKU_APP_DEFAULT_DOMAIN_NAME", DOMAIN)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.public_url == "https://cascade.acme.test"
    assert not settings.public_url_from_heroku


async def test_the_log_says_once_where_the_public_url_came_from(
    start_cascade: Start, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="cascade"):
        cascade = await start_cascade(heroku_app_default_domain_name=DOMAIN)
        await cascade.settle()
    said = [r.getMessage() for r in caplog.records if "dyno metadata" in r.getMessage()]
    assert said == [
        f"CASCADE_PUBLIC_URL is unset: using https://{DOMAIN} from Heroku's dyno metadata"
        " (HEROKU_APP_DEFAULT_DOMAIN_NAME)"
    ]
    assert cascade.runtime.subscriptions is not None  # it subscribes the stage apps there
    assert cascade.runtime.subscriptions.url == f"https://{DOMAIN}/webhooks/heroku"
