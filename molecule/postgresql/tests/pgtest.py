"""Shared by the postgresql scenario's tests: its hosts, the database as PostgreSQL sees it,
the app through nginx on each web host, the playbooks, and migrations to commit."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import textwrap
from pathlib import Path

import httpx
import testinfra

import conftest

DB, OTHER = "fd-pg-db", "fd-pg-other"
WEB = ["fd-pg-web1", "fd-pg-web2"]
APP = "/srv/app"
BACKUPS = "/var/backups/postgresql"
PG_LOG = "/var/log/postgresql/postgresql-17-main.log"
SCENARIO = Path(__file__).resolve().parent.parent
# The test vault and its password (make-vault, the scenario's dependency).
VAULT = SCENARIO.parent.parent / ".cache/vault" / SCENARIO.name


def host(name: str):
    return testinfra.get_host(f"podman://{name}")


def psql(sql: str, database: str = "app") -> str:
    """SQL as postgres on the db host: its rows, a line each, columns joined by |."""
    result = host(DB).run(f"runuser -u postgres -- psql -X -A -t -q -v ON_ERROR_STOP=1 -d {database} -c {shlex.quote(sql)}")
    assert result.rc == 0, result.stderr
    return result.stdout.strip()


def revision() -> str:
    return psql("SELECT string_agg(version_num, ',') FROM alembic_version")


def columns(table: str = "items") -> list[str]:
    return psql(f"SELECT column_name FROM information_schema.columns WHERE table_name = '{table}' ORDER BY ordinal_position").split()


def tables() -> list[str]:
    return psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").split()


def rows() -> list[str]:
    """Every row of items, as PostgreSQL prints them."""
    return psql("SELECT * FROM items ORDER BY id").splitlines()


def dumps() -> dict[str, str]:
    """The dumps in the backup directory: name -> 'mode owner group'."""
    out = host(DB).check_output(f"find {BACKUPS} -maxdepth 1 -type f -printf '%f %m %u %g\\n'")
    return {line.split()[0]: " ".join(line.split()[1:]) for line in out.splitlines()}


def ddl_logged(fragment: str) -> int:
    """How many times PostgreSQL logged a DDL statement containing fragment (log_statement = ddl)."""
    return int(host(DB).check_output(f"grep -c -F {shlex.quote(fragment)} {PG_LOG} || true") or 0)


def https(name: str) -> str:
    return f"https://localhost:{conftest.published_port(name, 443)}"


def get(name: str, path: str) -> httpx.Response:
    return httpx.get(f"{https(name)}{path}", verify=False, timeout=15)


def post_item(name: str, item: str) -> dict:
    response = httpx.post(f"{https(name)}/items", json={"name": item}, verify=False, timeout=15)
    assert response.status_code == 201, response.text
    return response.json()


def serving(name: str) -> dict:
    return conftest.serving(host(name))


def deploy(*extra: str) -> subprocess.CompletedProcess:
    return conftest.ansible_playbook("deploy.yml", os.environ["MOLECULE_INVENTORY_FILE"], *extra)


def playbook(name: str, *extra: str) -> subprocess.CompletedProcess:
    return conftest.ansible_playbook(name, os.environ["MOLECULE_INVENTORY_FILE"], *extra)


def db_password() -> str:
    """The scenario's database password, from its vault (as Ansible reads it)."""
    return subprocess.run(
        ["ansible-vault", "view", "--vault-password-file", str(VAULT / "vault-password"), str(VAULT / "db-password.vault")],
        check=True, capture_output=True, text=True).stdout.removesuffix("\n")


def server(**changes) -> str:
    """-e app_database_server as deploy.yml makes it from the db host, with changes (JSON)."""
    web_addresses = [host(name).check_output("hostname -I").split()[0] + "/32" for name in WEB]
    value = {"inventory_host": DB, "host": DB, "port": 5432, "database": "app", "user": "app", "password": db_password(),
             "clients": web_addresses, "backup_dir": BACKUPS, "backups_keep": 4}
    return json.dumps({"app_database_server": {**value, **changes}})


def migration(revision_id: str, down: str, upgrade: str, doc: str):
    """A change that adds alembic/versions/<revision_id>.py to the app's working copy."""
    body = textwrap.dedent(f'''\
        """{doc}"""

        import sqlalchemy as sa
        from alembic import op

        revision = "{revision_id}"
        down_revision = "{down}"
        branch_labels = None
        depends_on = None


        def upgrade() -> None:
        ''') + textwrap.indent(textwrap.dedent(upgrade).strip() + "\n", "    ")
    return lambda work: (work / "alembic/versions" / f"{revision_id}.py").write_text(body)


def run_as_app(name: str, python: str) -> str:
    """A shell command running Python code as the app user, in the serving venv, with the
    serving environment."""
    state = serving(name)
    venv = json.loads(host(name).file(f"{APP}/current/RELEASE.json").content_string)["venv"]
    return (f"runuser -u app -- {APP}/bin/with-env {state['env_file']} {venv}/bin/python -c {shlex.quote(python)}")
