import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import get_settings

APP_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and no app variables in the environment."""
    for name in ("DEBUG", "ENVIRONMENT", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_import_fails_naming_missing_variables(clean_env: Path) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(APP_DIR), "ENVIRONMENT": "test"}
    result = subprocess.run(
        [sys.executable, "-c", "import app.main"],
        cwd=clean_env,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "Missing or invalid settings: DATABASE_URL (Field required)" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_values_are_named(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(SystemExit, match=r"DEBUG .*ENVIRONMENT .*DATABASE_URL"):
        get_settings()


def test_debug_true_is_parsed(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBUG", "true")
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("DATABASE_URL", "sqlite+aiosqlite:///x.db")
    assert get_settings().debug is True


def test_dotenv_in_cwd_is_read(clean_env: Path) -> None:
    (clean_env / ".env").write_text("ENVIRONMENT=staging\nDATABASE_URL=sqlite+aiosqlite:///s.db\n")
    settings = get_settings()
    assert settings.environment == "staging"
    assert settings.database_url == "sqlite+aiosqlite:///s.db"
    assert settings.debug is False


def test_database_password_is_masked(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://app:s3cret@db/app")
    assert get_settings().masked_database_url == "postgresql+asyncpg://app:***@db/app"
