import pytest

from app.db import sync_database_url


@pytest.mark.parametrize(
    ("async_url", "sync_url"),
    [
        ("sqlite+aiosqlite:////srv/app/app.db", "sqlite:////srv/app/app.db"),
        ("postgresql+asyncpg://app:pw@db:5432/app", "postgresql+psycopg://app:pw@db:5432/app"),
    ],
)
def test_sync_database_url(async_url: str, sync_url: str) -> None:
    assert sync_database_url(async_url) == sync_url
