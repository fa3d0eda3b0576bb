from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from app.models import Base


@pytest.fixture
def sync_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the settings at an empty database; return its sync URL for inspection."""
    path = tmp_path / "migrations.db"
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    return f"sqlite:///{path}"


def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_head_is_latest_migration(alembic_config: Config) -> None:
    assert ScriptDirectory.from_config(alembic_config).get_heads() == ["0002_item_description"]


def test_upgrade_downgrade_upgrade(alembic_config: Config, sync_url: str) -> None:
    command.upgrade(alembic_config, "head")
    assert table_names(sync_url) == {"alembic_version", "items"}

    command.downgrade(alembic_config, "base")
    assert table_names(sync_url) == {"alembic_version"}

    command.upgrade(alembic_config, "head")
    engine = create_engine(sync_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        assert context.get_current_revision() == "0002_item_description"
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_offline_mode_renders_sql(
    alembic_config: Config, sync_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command.upgrade(alembic_config, "head", sql=True)
    sql = capsys.readouterr().out
    assert "CREATE TABLE items" in sql
    assert "ALTER TABLE items ADD COLUMN description TEXT" in sql
