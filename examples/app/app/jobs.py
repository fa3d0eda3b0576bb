"""Scheduled jobs: `python -m app.jobs NAME`.

    stamp     add an item named `stamp` whose description says which release ran the job
"""

import asyncio
import os
import sys

from sqlalchemy import text

from app.config import get_settings
from app.db import make_engine


async def stamp() -> None:
    engine = make_engine(get_settings().database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO items (name, description) VALUES ('stamp', :description)"),
                {"description": f"stamped by {os.environ.get('APP_RELEASE', 'unknown')}"},
            )
    finally:
        await engine.dispose()
    print(f"stamped by {os.environ.get('APP_RELEASE', 'unknown')}")


JOBS = {"stamp": stamp}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in JOBS:
        sys.exit(__doc__)
    asyncio.run(JOBS[sys.argv[1]]())
