"""Database engine and session helpers."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import event, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

SQLITE_BUSY_TIMEOUT_SECONDS = 30
SYNC_DRIVERS = {"sqlite+aiosqlite": "sqlite", "postgresql+asyncpg": "postgresql+psycopg"}


def make_engine(database_url: str) -> AsyncEngine:
    """Create the async engine; SQLite gets a busy timeout and WAL journal mode."""
    if make_url(database_url).get_backend_name() != "sqlite":
        return create_async_engine(database_url, pool_pre_ping=True)
    engine = create_async_engine(
        database_url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
    )
    event.listen(engine.sync_engine, "connect", _enable_sqlite_wal)
    return engine


def _enable_sqlite_wal(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def sync_database_url(database_url: str) -> str:
    """Swap an async driver for its sync counterpart, for Alembic."""
    url = make_url(database_url)
    url = url.set(drivername=SYNC_DRIVERS.get(url.drivername, url.drivername))
    return url.render_as_string(hide_password=False)


def get_engine(request: Request) -> AsyncEngine:
    """The engine created by the application lifespan."""
    engine: AsyncEngine = request.app.state.engine
    return engine


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request."""
    async with request.app.state.sessionmaker() as session:
        yield session


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
