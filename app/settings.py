"""One settings tree, read from the environment (and `.env`) once via `get_settings()`."""

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    """Every variable of SPEC.md's environment table; names are the SPEC's, lower-cased."""

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

    heroku_webhook_secret: SecretStr | None = None
    github_webhook_secret: SecretStr | None = None
    webhook_token: SecretStr | None = Field(None, validation_alias=_env("CASCADE_WEBHOOK_TOKEN"))
    admin_token: SecretStr | None = Field(None, validation_alias=_env("CASCADE_ADMIN_TOKEN"))

    tick_seconds: float = Field(60.0, gt=0, validation_alias=_env("CASCADE_TICK_SECONDS"))
    resync_seconds: float = Field(900.0, gt=0, validation_alias=_env("CASCADE_RESYNC_SECONDS"))
    dry_run: bool = Field(False, validation_alias=_env("CASCADE_DRY_RUN"))
    url: str = Field("http://localhost:8000", validation_alias=_env("CASCADE_URL"))
    public_url: str | None = Field(None, validation_alias=_env("CASCADE_PUBLIC_URL"))
    sandbox_deploy_seconds: float | None = Field(
        30.0, validation_alias=_env("CASCADE_SANDBOX_DEPLOY_SECONDS")
    )  # the sandbox's demo: a new commit on each pipeline's first stage this often (0: never)

    @property
    def sandbox(self) -> bool:
        """No Platform API token: run against the simulated Heroku in `app.sandbox`."""
        return self.heroku_api_key is None


@lru_cache
def get_settings() -> Settings:
    return Settings()
