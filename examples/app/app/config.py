"""Application settings, read from the environment and an optional `.env` file."""

from functools import lru_cache

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import make_url


class Settings(BaseSettings):
    """Runtime configuration; each field maps to an upper-case environment variable."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    debug: bool = False
    environment: str
    database_url: str

    @property
    def masked_database_url(self) -> str:
        """The database URL with its password hidden, safe to log."""
        return make_url(self.database_url).render_as_string(hide_password=True)


@lru_cache
def get_settings() -> Settings:
    """Return the settings, exiting with a readable message when they are invalid."""
    try:
        return Settings()  # type: ignore[call-arg]  # required fields come from the environment
    except ValidationError as exc:
        problems = ", ".join(
            f"{'.'.join(map(str, error['loc'])).upper()} ({error['msg']})" for error in exc.errors()
        )
        raise SystemExit(f"Missing or invalid settings: {problems}") from None
