"""Shared fixtures: a migrated temporary SQLite database and a test client."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient

from app.config import get_settings

APP_DIR = Path(__file__).resolve().parent.parent


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def alembic_config() -> Config:
    return Config(str(APP_DIR / "alembic.ini"))


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database; ENVIRONMENT and DATABASE_URL point at it for the session."""
    url = sqlite_url(tmp_path_factory.mktemp("db") / "app.db")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENVIRONMENT", "test")
        mp.setenv("DATABASE_URL", url)
        mp.delenv("DEBUG", raising=False)
        get_settings.cache_clear()
        command.upgrade(Config(str(APP_DIR / "alembic.ini")), "head")
        yield url


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    from app.main import app  # imported late: it reads the settings at import time

    with TestClient(app) as test_client:
        yield test_client
