"""The way back from a bad migration: rollback.yml brings the code back (never the schema),
restore.yml the rows, from the dump taken before the migration. Without a known backup it
lists the dumps; a dump for other code than the serving release's is refused; both refusals
change nothing."""

from __future__ import annotations

from conftest import said
from pgtest import WEB, columns, dumps, get, host, migration, playbook, post_item, revision, rows, serving

DESTRUCTIVE = migration("0005_drop_description", "0003_migration_log", doc="A bad migration: loses data.", upgrade="""
    op.execute("DELETE FROM items WHERE id % 2 = 0")
    op.drop_column("items", "description")
    op.execute("INSERT INTO migration_log (revision) VALUES ('0005_drop_description')")
""")

# What the tests below share, in their order.
BEFORE: dict = {}


def running(name: str) -> bool:
    status = host(name).run("supervisorctl status").stdout
    return f"app-{serving(name)['slot']}" in status and "RUNNING" in status


def test_a_destructive_migration_loses_rows_and_a_column(app_repo):
    for n in range(4):
        post_item(WEB[n % 2], f"kept by the dump {n}")
    BEFORE.update(rows=rows(), columns=columns(), dumps=dumps(), release={name: serving(name)["release"] for name in WEB})
    assert "description" in BEFORE["columns"] and len(BEFORE["rows"]) >= 4
    app_repo.commit("Drop the descriptions (and half the items)", DESTRUCTIVE)
    result = playbook("deploy.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert revision() == "0005_drop_description"
    assert "description" not in columns() and len(rows()) < len(BEFORE["rows"])
    new = [name for name in dumps() if name not in BEFORE["dumps"]]
    assert new == [f"app-{serving(WEB[0])['release']}-0003_migration_log.dump"], new
    BEFORE["dump"] = new[0]


def test_without_a_known_backup_restore_lists_the_dumps_and_changes_nothing():
    state = rows()
    cases = [((), "no backup given: nothing was changed."),
             (("-e", "backup=app-nope.dump"), "no backup app-nope.dump in fd-pg-db:/var/backups/postgresql: nothing")]
    for extra, says in cases:
        result = playbook("restore.yml", *extra)
        assert result.returncode != 0
        text = said(result)
        assert says in text and "the dumps there, newest first:" in text, text[-3000:]
        assert BEFORE["dump"] in text
    assert rows() == state and all(running(name) for name in WEB)


def test_a_backup_of_another_revision_than_the_serving_code_is_refused():
    state = rows()
    result = playbook("restore.yml", "-e", f"backup={BEFORE['dump']}")
    assert result.returncode != 0
    text = said(result)
    assert f"{BEFORE['dump']} is at revision 0003_migration_log, but the release serving" in text, text[-3000:]
    assert "runs the code for 0005_drop_description: nothing was changed. Roll the code back" in text, text[-3000:]
    assert rows() == state and all(running(name) for name in WEB)


def test_rollback_then_restore_brings_back_the_rows_of_the_dump_taken_before_the_migration():
    result = playbook("rollback.yml")
    assert result.returncode == 0, result.stdout[-3000:]
    assert {name: serving(name)["release"] for name in WEB} == BEFORE["release"]
    # A code rollback never touches the schema.
    assert revision() == "0005_drop_description" and "description" not in columns()

    taken = dumps()
    result = playbook("restore.yml", "-e", f"backup={BEFORE['dump']}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"app on fd-pg-db is back at {BEFORE['dump']} (revision 0003_migration_log)" in said(result)
    assert rows() == BEFORE["rows"] and columns() == BEFORE["columns"]
    assert revision() == "0003_migration_log"
    # What the database held before the restore, kept to undo it.
    new = {name: mode for name, mode in dumps().items() if name not in taken}
    assert len(new) == 1 and next(iter(new)).startswith("app-prerestore-"), new
    assert next(iter(new)).endswith("-0005_drop_description.dump") and new[next(iter(new))] == "600 postgres postgres"
    for name in WEB:
        assert running(name)
        assert get(name, "/health").json()["database_revision"] == "0003_migration_log"
        assert [item["name"] for item in get(name, "/items?limit=1000").json()][-4:] == [f"kept by the dump {n}" for n in range(4)]
