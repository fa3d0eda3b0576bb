"""The app's database server, reached as the app reaches it: the URL in $DATABASE_URL (or
the variable --var names), through the app's own SQLAlchemy and driver. Run with the
release's venv Python, as the app user, with the app's environment (bin/with-env).

    database check         connect and SELECT 1; say where (backend, host, port, database, login)
    database revision      print the Alembic revision(s) the database is at, sorted and
                           joined by "," (nothing for a database never migrated)
    database migrate [--expect-revision REV] [--heads REV] [--timeout S] -- COMMAND...
                           run COMMAND (alembic upgrade head) holding a PostgreSQL advisory
                           lock, so that two deploys never migrate one database at once.
                           Under the lock the revision is read again: at --heads already,
                           another deploy migrated it while this one waited (exit 5, COMMAND
                           not run); anything but --expect-revision, the database moved since
                           this deploy read it and took its dump (exit 4, COMMAND not run).

Messages start with "database:" and name the backend, host, port, database and login, and
the server's own words; never the password. Exit codes: 0 done (migrate: COMMAND's code),
1 the database cannot be reached, 2 usage, 3 no lock within --timeout, 4 the revision
moved, 5 already at --heads.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time

from sqlalchemy import create_engine, inspect, make_url, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.pool import NullPool

# Advisory locks belong to one database: a fixed key serialises every deploy of it.
LOCK_KEY = int.from_bytes(b"fd_mig", "big")
CONNECT_SECONDS = 15
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433, "oracle": 1521}


def where(url: URL) -> str:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return f"sqlite database {url.database}"
    port = url.port or DEFAULT_PORTS.get(backend, "default port")
    return f"{backend} at {url.host or 'localhost'}:{port}, database {url.database}, as {url.username}"


def reason(error: BaseException, url: URL) -> str:
    """The server's (or the network's) own words, on one line, without the password."""
    if isinstance(error, TimeoutError):
        return f"no answer within {CONNECT_SECONDS} s"
    original = getattr(error, "orig", None) or error
    words = str(original).strip() or type(original).__name__
    # SQLAlchemy's asyncpg adapter prefixes the driver's exception class.
    words = re.sub(r"^<class '[\w.]+'>: ", "", words)
    words = " ".join(words.replace("\n", " ").split())
    if url.password:
        words = words.replace(url.password, "***")
    return words


def read_revision(connection: Connection) -> str:
    if not inspect(connection).has_table("alembic_version"):
        return ""
    return ",".join(sorted(connection.execute(text("SELECT version_num FROM alembic_version")).scalars()))


def run(url: URL, work):
    """work(connection) on one connection, with the URL's own driver (async or not)."""
    if url.get_dialect().is_async:
        from sqlalchemy.ext.asyncio import create_async_engine

        async def main():
            engine = create_async_engine(url, poolclass=NullPool)
            try:
                connection = await asyncio.wait_for(engine.connect(), CONNECT_SECONDS)
                try:
                    return await connection.run_sync(work)
                finally:
                    await connection.close()
            finally:
                await engine.dispose()

        return asyncio.run(main())
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return work(connection)
    finally:
        engine.dispose()


def migrate(connection: Connection, args, url: URL) -> int:
    connection = connection.execution_options(isolation_level="AUTOCOMMIT")
    connection.execute(text(f"SET lock_timeout = '{int(args.timeout)}s'"))
    started = time.monotonic()
    try:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": LOCK_KEY})
    except Exception as error:  # noqa: BLE001 - lock_timeout, or the connection lost
        print(f"database: no migration lock on {where(url)} within {int(args.timeout)} s (another deploy is"
              f" migrating it): {reason(error, url)}", file=sys.stderr)
        return 3
    try:
        have = read_revision(connection)
        print(f"database: migration lock on {where(url)} held after {time.monotonic() - started:.1f} s;"
              f" at {have or 'no revision'}", flush=True)
        if args.heads is not None and have == args.heads:
            print(f"database: already at {have}: another deploy migrated it while this one waited", flush=True)
            return 5
        if args.expect_revision is not None and have != args.expect_revision:
            print(f"database: {where(url)} is at {have or 'no revision'}, not at {args.expect_revision or 'no revision'}"
                  " as this deploy read it before its dump: another deploy migrated it meanwhile. Nothing was run;"
                  " deploy again", file=sys.stderr)
            return 4
        try:
            return subprocess.call(args.command)
        except OSError as error:
            print(f"database: cannot run {args.command[0]}: {error}", file=sys.stderr)
            return 127
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})


def server_version(connection: Connection) -> str:
    connection.execute(text("SELECT 1"))
    return ".".join(map(str, connection.dialect.server_version_info or ())) or "?"


def main() -> int:
    parser = argparse.ArgumentParser(prog="database", description=__doc__.splitlines()[0])
    parser.add_argument("--var", default="DATABASE_URL", help="the environment variable holding the URL")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("check")
    sub.add_parser("revision")
    lock = sub.add_parser("migrate")
    lock.add_argument("--expect-revision")
    lock.add_argument("--heads")
    lock.add_argument("--timeout", type=float, default=600)
    lock.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.action == "migrate":
        args.command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not args.command:
            parser.error("migrate: no command")

    value = os.environ.get(args.var, "")
    if not value:
        print(f"database: ${args.var} is not set", file=sys.stderr)
        return 2
    url = make_url(value)
    if args.action == "migrate" and url.get_backend_name() != "postgresql":
        print(f"database: migrate holds a PostgreSQL advisory lock; {where(url)} is not PostgreSQL", file=sys.stderr)
        return 2
    # libpq (psycopg) waits this long for a connection too.
    os.environ.setdefault("PGCONNECT_TIMEOUT", str(CONNECT_SECONDS))

    try:
        if args.action == "check":
            print(f"database: reached {where(url)} (server {run(url, server_version)})")
            return 0
        if args.action == "revision":
            print(run(url, read_revision))
            return 0
        return run(url, lambda c: migrate(c, args, url))
    except Exception as error:  # noqa: BLE001 - whatever stops the connection is the finding
        print(f"database: cannot reach the {where(url)}: {reason(error, url)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
