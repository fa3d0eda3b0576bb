"""A background worker: `python -m app.worker`.

It works the queue of items named `job:<seconds>` that have no description yet: it claims
one (its description becomes `working: <release>`), works on it that many seconds, then
writes `done by <release>`. SIGTERM (a deploy stopping the old release's workers) lets the
job in hand finish before the worker exits: no job is left half done. A database error
(a restart, a restore ending its session) is logged and the queue asked again.
"""

import asyncio
import logging
import os
import signal

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import get_settings
from app.db import make_engine

logger = logging.getLogger("app.worker")
RELEASE = os.environ.get("APP_RELEASE", "unknown")
IDLE_SECONDS = 0.5

CLAIM = text(
    "UPDATE items SET description = :working WHERE id = ("
    "SELECT id FROM items WHERE name LIKE 'job:%' AND description IS NULL ORDER BY id LIMIT 1"
    ") AND description IS NULL RETURNING id, name"
)
DONE = text("UPDATE items SET description = :done WHERE id = :id")


# The job in hand (its id), for the stop message.
in_hand: int | None = None


async def work_one(engine: AsyncEngine) -> bool:
    """Claim and do the oldest waiting job; False when there is none."""
    global in_hand
    async with engine.begin() as connection:
        claimed = (await connection.execute(CLAIM, {"working": f"working: {RELEASE}"})).first()
    if claimed is None:
        return False
    seconds = float(claimed.name.partition(":")[2] or 0)
    logger.info("Job %s (%s): %g s of work", claimed.id, claimed.name, seconds)
    in_hand = claimed.id
    await asyncio.sleep(seconds)
    async with engine.begin() as connection:
        await connection.execute(DONE, {"done": f"done by {RELEASE}", "id": claimed.id})
    in_hand = None
    logger.info("Job %s done", claimed.id)
    return True


def ask_to_stop(stopping: asyncio.Event) -> None:
    if in_hand is not None:
        logger.info("Asked to stop while on job %s: finishing it first", in_hand)
    else:
        logger.info("Asked to stop")
    stopping.set()


async def main() -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, ask_to_stop, stopping)
    engine = make_engine(get_settings().database_url)
    logger.info("Worker of release %s started", RELEASE)
    try:
        while not stopping.is_set():
            try:
                worked = await work_one(engine)
            except (SQLAlchemyError, OSError) as exc:
                # The database restarting, a restore ending sessions: wait, then ask again.
                logger.warning("Database error, asking again in %g s: %s", IDLE_SECONDS, exc)
                worked = False
            if not worked:
                try:
                    await asyncio.wait_for(stopping.wait(), IDLE_SECONDS)
                except TimeoutError:
                    pass
    finally:
        await engine.dispose()
    logger.info("Worker of release %s stopped", RELEASE)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    asyncio.run(main())
