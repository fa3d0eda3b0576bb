"""Back up, restore and describe a SQLite database, with SQLite's own backup API (safe
while the serving release reads and writes it).

    sqlite-db backup DATABASE BACKUP     copy DATABASE into BACKUP (a plain rollback-journal file)
    sqlite-db restore BACKUP DATABASE    copy BACKUP over DATABASE, then check that the
                                         schema and each table's row count match the backup
    sqlite-db describe DATABASE          print the schema and each table's row count (JSON)

Run as the app user (the owner of the database). Files made get umask 027.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys


def connect(path: str, create: bool = False) -> sqlite3.Connection:
    if not create and not os.path.exists(path):
        sys.exit(f"{path}: no such database")
    return sqlite3.connect(path, timeout=30)


def describe(db: sqlite3.Connection) -> dict:
    schema = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    tables = [name for kind, name, _table, _sql in schema if kind == "table" and not name.startswith("sqlite_")]
    rows = {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    return {"schema": [list(entry) for entry in schema], "rows": rows}


def copy(source: str, target: str) -> None:
    with connect(source) as src, connect(target, create=True) as dst:
        src.backup(dst)


def main() -> None:
    os.umask(0o027)
    command, args = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if command == "backup" and len(args) == 2:
        copy(*args)
        with connect(args[1]) as db:
            # A backup is one self-contained file, whatever journal mode the live one uses.
            db.execute("PRAGMA journal_mode=DELETE")
    elif command == "restore" and len(args) == 2:
        backup, database = args
        copy(backup, database)
        with connect(backup) as b, connect(database) as d:
            want, have = describe(b), describe(d)
        if want != have:
            sys.exit(f"{database} does not match {backup} after the restore: {json.dumps(have)}")
        print(json.dumps({"restored": database, "from": backup, "tables": have["rows"]}))
    elif command == "describe" and len(args) == 1:
        with connect(args[0]) as db:
            print(json.dumps(describe(db)))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
