"""ASGI entry point: `app.main:app`."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.api import health, items
from app.config import get_settings
from app.db import make_engine

logger = logging.getLogger(__name__)

settings = get_settings()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the database engine for the life of the worker process."""
    if settings.debug:
        logger.info(
            "Settings: environment=%s debug=%s database_url=%s",
            settings.environment,
            settings.debug,
            settings.masked_database_url,
        )
    engine = make_engine(settings.database_url)
    app.state.engine = engine
    app.state.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    yield
    await engine.dispose()


app = FastAPI(title="Example app", debug=settings.debug, lifespan=lifespan)
app.include_router(health.router)
app.include_router(items.router)
