"""Migrations on the shared PostgreSQL database: never two at once, once per deploy also one
host at a time, a dump before each that moves the revision (and none migrated when it
fails), a failing one rolled back whole; a database the web hosts cannot log in to is
named in the deploy's message, without its password."""

from __future__ import annotations

import json
import threading

import conftest
from conftest import failure_message, said
from load import Load
from pgtest import (
    APP, DB, WEB, columns, ddl_logged, deploy, db_password, dumps, get, host, migration, psql, revision, rows,
    serving, server, tables,
)

MIGRATION_LOG = migration("0003_migration_log", "0002_item_description", doc="A log of the migrations that ran.", upgrade="""
    op.create_table(
        "migration_log",
        sa.Column("revision", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.execute("INSERT INTO migration_log (revision) VALUES ('0003_migration_log')")
""")

HALF_DONE = migration("0004_half_done", "0003_migration_log", doc="Changes the schema, then fails.", upgrade="""
    op.add_column("items", sa.Column("half_done", sa.Text(), nullable=True))
    op.create_table("half_done", sa.Column("id", sa.Integer(), primary_key=True))
    op.execute("INSERT INTO migration_log (revision) VALUES ('0004_half_done')")
    op.execute("SELECT 1 / 0")
""")


def database_helper(name: str, *args: str) -> str:
    """bin/database with the serving release's venv and environment, as the app user."""
    state = serving(name)
    venv = json.loads(host(name).file(f"{APP}/current/RELEASE.json").content_string)["venv"]
    return f"runuser -u app -- {APP}/bin/with-env {state['env_file']} {venv}/bin/python {APP}/bin/database " + " ".join(args)


def under_load(*extra: str):
    """deploy.yml with a paced load through nginx on both web hosts; the run and the loads."""
    loads = [Load(f"https://localhost:{conftest.published_port(name, 443)}/items?limit=5", clients=2, seconds=400,
                  requests=50_000, rate=10) for name in WEB]
    for load in loads:
        load.start()
    try:
        result = deploy(*extra)
    finally:
        for load in loads:
            load.stop()
    return result, loads


def test_two_migrations_of_one_database_take_turns_and_a_moved_revision_is_noticed():
    """Two helpers at once, from two web hosts: the second waits for the first's lock."""
    now = revision()
    command = "sh -c 'echo start $(date +%s.%N); sleep 2; echo end $(date +%s.%N)'"
    results = {}

    def run(name):
        results[name] = host(name).run(database_helper(name, "migrate", "--expect-revision", now, "--", command))

    threads = [threading.Thread(target=run, args=(name,)) for name in WEB]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spans = []
    for name, result in results.items():
        assert result.rc == 0, result.stderr
        times = dict(line.split() for line in result.stdout.splitlines() if line.startswith(("start", "end")))
        spans.append((float(times["start"]), float(times["end"])))
    (first_start, first_end), (second_start, _) = sorted(spans)
    print(f"\nlock: first ran {first_start:.2f}-{first_end:.2f}, second started {second_start - first_end:.2f} s after it ended")
    assert second_start >= first_end
    web = host(WEB[0])
    at_heads = web.run(database_helper(WEB[0], "migrate", "--expect-revision", "0001_create_items", "--heads", now, "--", "false"))
    assert at_heads.rc == 5 and "already at 0002_item_description" in at_heads.stdout, at_heads.stdout
    moved = web.run(database_helper(WEB[0], "migrate", "--expect-revision", "0001_create_items", "--", "false"))
    assert moved.rc == 4 and "is at 0002_item_description, not at 0001_create_items" in moved.stderr, moved.stderr


def test_a_login_the_server_refuses_stops_the_deploy_at_the_settings_check_naming_the_database():
    before = {name: serving(name) for name in WEB}
    result = deploy("-e", server(password="not-the-password-4711"))
    assert result.returncode != 0
    text = said(result)
    assert f'release {before[WEB[0]]["release"]} failed at "database"' in text, text[-3000:]
    assert ('database: cannot reach the postgresql at fd-pg-db:5432, database app, as app: password authentication failed'
            ' for user "app"') in text, text[-3000:]
    assert "not-the-password-4711" not in result.stdout + result.stderr
    assert db_password() not in result.stdout + result.stderr
    assert {name: serving(name) for name in WEB} == before


def test_a_dump_that_fails_stops_the_deploy_before_the_migration(app_repo):
    before, taken = {name: serving(name) for name in WEB}, dumps()
    app_repo.commit("Log the migrations that ran", MIGRATION_LOG)
    result = deploy("-e", server(backup_dir="/nonexistent"))
    assert result.returncode != 0
    text = said(result)
    assert 'failed at "the database dump"' in text, text[-3000:]
    assert "pg_dump of app on fd-pg-db into /nonexistent/app-" in text and "could not open output file" in text, text[-3000:]
    assert revision() == "0002_item_description" and "migration_log" not in tables()
    assert {name: serving(name) for name in WEB} == before and dumps() == taken


def test_a_migration_deployed_one_host_at_a_time_runs_once_after_one_dump_and_drops_no_request():
    before, kept, taken = {name: serving(name) for name in WEB}, rows(), dumps()
    result, loads = under_load("-e", "deploy_serial=1")
    for name, load in zip(WEB, loads):
        print(f"\n{name} during the redeploy (deploy_serial=1): {load.result.summary()}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert said(result).count("PLAY [Switch to the release]") == 2, "one batch per web host"
    after = {name: serving(name) for name in WEB}
    assert after[WEB[0]]["release"] == after[WEB[1]]["release"] != before[WEB[0]]["release"]
    # Once: the migration's own row, and its DDL in PostgreSQL's log.
    assert revision() == "0003_migration_log"
    assert psql("SELECT revision FROM migration_log").splitlines() == ["0003_migration_log"]
    assert ddl_logged("CREATE TABLE migration_log") == 1
    # One dump, before it: named by the release and the revision it was at, private.
    new = {name: mode for name, mode in dumps().items() if name not in taken}
    assert new == {f"app-{after[WEB[0]]['release']}-0002_item_description.dump": "600 postgres postgres"}, new
    listing = host(DB).check_output(f"pg_restore --list /var/backups/postgresql/{next(iter(new))}")
    assert "TABLE DATA public items" in listing and "migration_log" not in listing
    assert rows() == kept
    for name, load in zip(WEB, loads):
        assert load.result.sent > 0 and load.result.failed == 0, (name, load.result.summary())
        assert get(name, "/health").json()["database_revision"] == "0003_migration_log"


def test_a_failing_migration_is_rolled_back_whole_and_the_next_good_deploy_works(app_repo):
    before, kept, schema, taken = {name: serving(name) for name in WEB}, rows(), columns(), dumps()
    app_repo.commit("Change the schema, then fail", HALF_DONE)
    result, loads = under_load()
    for name, load in zip(WEB, loads):
        print(f"\n{name} during the failing migration: {load.result.summary()}")
    assert result.returncode != 0
    text = said(result)
    assert 'failed at "migration"' in text, text[-3000:]
    assert "PostgreSQL rolled the migration back: the database is as it was, at 0003_migration_log" in text, text[-3000:]
    assert "division by zero" in "\n".join(failure_message(result)) or "division by zero" in text
    # Schema and rows as they were: no column, no table, no log row, the same revision.
    assert columns() == schema and "half_done" not in tables() and rows() == kept
    assert revision() == "0003_migration_log"
    assert psql("SELECT revision FROM migration_log").splitlines() == ["0003_migration_log"]
    assert {name: serving(name) for name in WEB} == before
    assert len(dumps()) == min(len(taken) + 1, 4)
    for name, load in zip(WEB, loads):
        assert load.result.failed == 0, (name, load.result.summary())
    # The next good deploy: the failing migration reverted.
    sha = app_repo.revert()
    again = deploy()
    assert again.returncode == 0, again.stdout[-3000:]
    assert {serving(name)["sha"] for name in WEB} == {sha}
    assert revision() == "0003_migration_log" and rows() == kept
    assert all(get(name, "/health").json()["status"] == "ok" for name in WEB)
