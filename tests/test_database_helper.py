"""The app role's bin/database, run as the deploy runs it: with the sample app's venv (its
SQLAlchemy and drivers), here the test bed's (.cache/app-venv). PostgreSQL itself is the
postgresql scenario's; these are the paths that need no server."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HELPER = ROOT / "roles/app/files/database.py"
# The sample app's venv, or another with its requirements (FD_APP_PYTHON).
PYTHON = Path(os.environ.get("FD_APP_PYTHON", ROOT / ".cache/app-venv/bin/python"))

def helper(*args: str, url: str | None = None, var: str = "DATABASE_URL") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != var}
    if url is not None:
        env[var] = url
    return subprocess.run([str(PYTHON), str(HELPER), *args], capture_output=True, text=True, env=env, timeout=60)


def test_a_sqlite_database_is_reached_and_its_revision_read(tmp_path):
    path = tmp_path / "app.db"
    url = f"sqlite:///{path}"
    assert helper("revision", url=url).stdout == "\n"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        db.executemany("INSERT INTO alembic_version VALUES (?)", [("0002_b",), ("0001_a",)])
    assert helper("revision", url=url).stdout == "0001_a,0002_b\n"
    checked = helper("check", url=url)
    assert checked.returncode == 0 and checked.stdout.startswith(f"database: reached sqlite database {path}")


def test_the_lock_is_postgresql_s_and_the_url_must_be_set(tmp_path):
    refused = helper("migrate", "--", "true", url=f"sqlite:///{tmp_path}/app.db")
    assert refused.returncode == 2 and "is not PostgreSQL" in refused.stderr
    unset = helper("--var", "MY_DB", "check", var="MY_DB")
    assert unset.returncode == 2 and "$MY_DB is not set" in unset.stderr


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
def test_a_server_that_does_not_answer_is_named_without_the_password(driver):
    imported = subprocess.run([str(PYTHON), "-c", f"import {driver}"], capture_output=True, text=True)
    assert imported.returncode == 0, f"{PYTHON} lacks {driver} (scripts/setup venv installs the sample app's requirements)"
    url = f"postgresql+{driver}://app:s3cret-pass%2Fword@127.0.0.1:1/appdb"
    result = helper("check", url=url)
    assert result.returncode == 1
    assert result.stderr.startswith("database: cannot reach the postgresql at 127.0.0.1:1, database appdb, as app: ")
    assert "s3cret" not in result.stderr
    # asyncpg says it its way, libpq its own.
    assert "Connect call failed" in result.stderr or "Connection refused" in result.stderr, result.stderr
