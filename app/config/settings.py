"""One settings tree, read from the environment (and `.env`) once via `get_settings()`."""

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AliasChoices, BeforeValidator, Field, PrivateAttr, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.config.table import parse_duration


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


def _duration(value: object) -> object:
    """`1h`, `30m`, `90s` or seconds, as in the services file."""
    return value if isinstance(value, timedelta) else parse_duration(value)


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class Settings(BaseSettings):
    """Every variable of the README's configuration table (SPEC.md's, and more); lower-cased."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    port: int = 8000
    redis_url: SecretStr | None = None
    data_dir: Path = Field(Path(".cascade"), validation_alias=_env("CASCADE_DATA_DIR"))
    config_path: Path = Field(Path("cascade.toml"), validation_alias=_env("CASCADE_CONFIG"))

    heroku_api_key: SecretStr | None = None
    heroku_api_url: str = "https://api.heroku.com"
    github_token: SecretStr | None = None
    github_api_url: str = "https://api.github.com"
    librato_user: str | None = None
    librato_token: SecretStr | None = None
    librato_api_url: str = "https://metrics-api.librato.com"
    status_api_url: str | None = None
    alertmanager_heartbeat: str | None = Field(
        None, validation_alias=_env("CASCADE_ALERTMANAGER_HEARTBEAT")
    )  # the alertname of an always-firing alert (Watchdog) that proves Alertmanager alive
    alertmanager_heartbeat_max_age: Duration = Field(
        timedelta(minutes=5), validation_alias=_env("CASCADE_ALERTMANAGER_HEARTBEAT_MAX_AGE")
    )  # an older last notification of it: Alertmanager is not heard, alerts are unknown
    silent_source_max_age: Duration = Field(
        timedelta(hours=24), validation_alias=_env("CASCADE_SILENT_SOURCE_MAX_AGE")
    )  # a webhook source with no heartbeat: how long its silence still means "nothing fires"

    heroku_webhook_secret: SecretStr | None = None
    github_webhook_secret: SecretStr | None = None
    webhook_token: SecretStr | None = Field(None, validation_alias=_env("CASCADE_WEBHOOK_TOKEN"))
    admin_token: SecretStr | None = Field(None, validation_alias=_env("CASCADE_ADMIN_TOKEN"))

    tick_seconds: float = Field(60.0, gt=0, validation_alias=_env("CASCADE_TICK_SECONDS"))
    resync_seconds: float = Field(900.0, gt=0, validation_alias=_env("CASCADE_RESYNC_SECONDS"))
    poll_seconds: float = Field(
        60.0, gt=0, validation_alias=_env("CASCADE_POLL_SECONDS")
    )  # how often the status page and Librato's alert status are polled (the webhooks' fallback)
    signal_retry_seconds: float = Field(
        10.0, gt=0, validation_alias=_env("CASCADE_SIGNAL_RETRY_SECONDS")
    )  # how soon a signal that could not be read, or a URL that did not answer 200, is retried
    dry_run: bool = Field(False, validation_alias=_env("CASCADE_DRY_RUN"))
    url: str | None = Field(
        None, validation_alias=_env("CASCADE_URL")
    )  # where the client commands find Cascade; unset: `client_url`, on this machine
    public_url: str | None = Field(
        None, validation_alias=_env("CASCADE_PUBLIC_URL")
    )  # unset on Heroku with dyno metadata: https://$HEROKU_APP_DEFAULT_DOMAIN_NAME
    heroku_app_default_domain_name: str | None = (
        None  # set by Heroku when the app has `heroku labs:enable runtime-dyno-metadata`
    )
    reload_seconds: float = Field(
        5.0, ge=0, validation_alias=_env("CASCADE_RELOAD_SECONDS")
    )  # how often the services file's modification time is checked (0: only SIGHUP, /reload)
    shutdown_seconds: float = Field(
        15.0, ge=0, validation_alias=_env("CASCADE_SHUTDOWN_SECONDS")
    )  # on SIGTERM, how long a reconcile in progress may take to finish before it is handed back
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", validation_alias=_env("CASCADE_LOG_FORMAT")
    )  # auto: readable key=value lines on a terminal, one JSON object per line otherwise
    log_level: str = Field("INFO", validation_alias=_env("CASCADE_LOG_LEVEL"))
    sandbox_deploy_seconds: float | None = Field(
        30.0, validation_alias=_env("CASCADE_SANDBOX_DEPLOY_SECONDS")
    )  # the sandbox's demo: a new commit on each pipeline's first stage this often (0: never)
    slack_webhook_url: SecretStr | None = Field(
        None, validation_alias=_env("CASCADE_SLACK_WEBHOOK_URL")
    )  # a Slack incoming webhook: promotions, pauses, commits blocked too long
    slack_blocked_after: Duration = Field(
        timedelta(hours=1), validation_alias=_env("CASCADE_SLACK_BLOCKED_AFTER")
    )  # tell Slack once when a commit has been blocked this long

    _public_url_from_heroku: bool = PrivateAttr(False)

    @model_validator(mode="after")
    def _public_url_from_dyno_metadata(self) -> Self:
        """New Heroku apps get a random suffix in their domain, so `https://<app
        name>.herokuapp.com` is wrong for them; Heroku's dyno metadata knows the right one."""
        if not self.public_url:
            self.public_url = None
            domain = (self.heroku_app_default_domain_name or "").strip().strip("/")
            if domain:
                self.public_url = f"https://{domain}"
                self._public_url_from_heroku = True
        return self

    @property
    def public_url_from_heroku(self) -> bool:
        """CASCADE_PUBLIC_URL was unset and came from HEROKU_APP_DEFAULT_DOMAIN_NAME."""
        return self._public_url_from_heroku

    @property
    def client_url(self) -> str:
        """CASCADE_URL, else the port `cascade serve` listens on here (PORT, else 8000)."""
        return self.url or f"http://localhost:{self.port}"

    @property
    def sandbox(self) -> bool:
        """No Platform API token: run against the simulated Heroku in `app.sandbox`."""
        return self.heroku_api_key is None


@lru_cache
def get_settings() -> Settings:
    return Settings()
