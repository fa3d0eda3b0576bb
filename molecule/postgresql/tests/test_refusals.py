"""Bad input about the database stops deploy.yml before any change on any of the three
hosts, naming the variable: no database at all, inventory/prod's example with a password
that is not from ansible-vault, a login name that is not an SQL identifier."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, ansible_playbook, failure_message, host_state, said
from pgtest import DB, WEB, host, serving

GROUP_VARS = Path(os.environ.get("MOLECULE_INVENTORY_FILE", ".")).parent / "group_vars"


def scenario(group: str) -> dict:
    return yaml.safe_load((GROUP_VARS / group).read_text()) or {}


def inventory(path: Path, web: dict, db: dict | None = None, db_dir: Path | None = None) -> Path:
    """The scenario's hosts (over podman exec) with these group variables; db None: no db group."""
    path.mkdir(parents=True, exist_ok=True)
    reach = {"ansible_connection": "containers.podman.podman"}
    groups = {"web": {"hosts": {name: reach for name in WEB}}}
    if db is not None or db_dir is not None:
        groups["db"] = {"hosts": {DB: reach}}
    (path / "hosts.yml").write_text(yaml.safe_dump(groups))
    (path / "group_vars").mkdir(exist_ok=True)
    (path / "group_vars/all.yml").write_text(yaml.safe_dump(scenario("all")))
    (path / "group_vars/web.yml").write_text(yaml.safe_dump(web))
    if db_dir is not None:
        shutil.copytree(db_dir, path / "group_vars/db")
    elif db is not None:
        (path / "group_vars/db.yml").write_text(yaml.safe_dump(db))
    return path


def without_url(web: dict) -> dict:
    return {**web, "app_env": {k: v for k, v in web["app_env"].items() if k != "DATABASE_URL"}}


def prod_example_with_a_plain_password(path: Path) -> Path:
    """inventory/prod's group_vars/db as it is, and its vault.yml written in plain text."""
    db = path / "prod-db"
    shutil.copytree(ROOT / "inventory/prod/group_vars/db", db)
    (db / "vault.yml").write_text(yaml.safe_dump({"vault_postgresql_password": "a-plain-text-password"}))
    return db


CASES = {
    "no db host and no DATABASE_URL": (
        lambda tmp: inventory(tmp, without_url(scenario("web"))),
        "- app_env.DATABASE_URL: expected the database URL, for migrations"),
    "inventory/prod's example with a password that is not from vault": (
        lambda tmp: inventory(tmp, scenario("web"), db_dir=prod_example_with_a_plain_password(tmp)),
        "- postgresql_password: expected a value from ansible-vault"),
    "a login name that is not an SQL identifier": (
        lambda tmp: inventory(tmp, scenario("web"), {**scenario("db"), "postgresql_user": "app-user"}),
        "- postgresql_user: got 'app-user'; expected an SQL identifier"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_is_refused_before_any_change_on_any_host_naming_the_variable(case, tmp_path):
    make, says = CASES[case]
    hosts = {name: host(name) for name in [DB, *WEB]}
    before = {name: host_state(h) for name, h in hosts.items()}
    serving_before = {name: serving(name) for name in WEB}
    result = ansible_playbook("deploy.yml", make(tmp_path / "inventory"))
    assert result.returncode != 0
    text = said(result)
    assert "1 bad input, nothing was changed:" in text and says in text, result.stdout[-3000:]
    assert "a-plain-text-password" not in result.stdout
    message = failure_message(result)
    assert len(message) < 15, "\n".join(message)
    changed = re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", result.stdout, re.M)
    assert changed and all(count == "0" for _name, count in changed), changed
    assert {name: host_state(h) for name, h in hosts.items()} == before
    assert {name: serving(name) for name in WEB} == serving_before
