"""Health check used by the load balancer and the deploy tool."""

import logging
import os
import platform
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from sqlalchemy import Connection, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from app.config import Settings, get_settings
from app.db import EngineDep
from app.schemas import Health

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


def _current_revision(connection: Connection) -> str | None:
    """The Alembic revision stamped in the database, or None if never migrated."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    revision: str | None = connection.scalar(text("SELECT version_num FROM alembic_version"))
    return revision


@router.get("/health", responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Health}})
async def health(
    response: Response,
    engine: EngineDep,
    settings: Annotated[Settings, Depends(get_settings)],
) -> Health:
    report = Health(
        status="ok",
        release=os.environ.get("APP_RELEASE", "unknown"),
        python=platform.python_version(),
        environment=settings.environment,
        database_revision=None,
    )
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            report.database_revision = await connection.run_sync(_current_revision)
    except (SQLAlchemyError, OSError):
        logger.exception("Health check: database unavailable")
        report.status = "error"
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return report


@router.get("/client")
async def client(request: Request) -> dict[str, str | None]:
    """The client address the app sees (behind a proxy: what the proxy vouches for)."""
    return {"address": request.client.host if request.client else None}
