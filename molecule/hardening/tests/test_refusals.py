"""A bad hardening variable stops a deploy before any change, naming the variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from conftest import ansible_playbook, recap, said


@pytest.fixture(scope="module")
def deploy_with(host, tmp_path_factory):
    """deploy.yml over SSH as the scenario connects (deploy + sudo), with changed web variables."""
    inventory_dir = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    name = host.backend.get_hostname()
    hostvars = yaml.safe_load((inventory_dir / "host_vars" / name).read_text())
    group_vars: dict = {}
    for group in ("all", "web"):
        for candidate in (inventory_dir / "group_vars" / group, inventory_dir / "group_vars" / f"{group}.yml"):
            if candidate.is_file():
                group_vars.update(yaml.safe_load(candidate.read_text()) or {})

    def run(**changes):
        path = tmp_path_factory.mktemp("inventory") / "hosts.yml"
        path.write_text(yaml.safe_dump({"web": {"hosts": {name: hostvars}, "vars": {**group_vars, **changes}}}))
        return ansible_playbook("deploy.yml", path)

    return run


def test_an_unknown_port_format_is_refused_before_any_change(deploy_with):
    result = deploy_with(hardening_firewall_open_ports=["80/tcp", "443:tcp"])
    assert result.returncode != 0
    assert '- hardening_firewall_open_ports: got ["80/tcp", "443:tcp"]; expected PORT/PROTO' in said(result)
    assert recap(result)["changed"] == 0


def test_an_allow_list_without_the_connecting_user_is_refused_before_any_change(deploy_with):
    result = deploy_with(hardening_ssh_allow_users=["alice"])
    assert result.returncode != 0
    assert "hardening_ssh_allow_users (alice) excludes deploy" in result.stdout
    assert recap(result)["changed"] == 0


def test_moving_ssh_to_a_port_the_firewall_does_not_open_is_refused(deploy_with):
    result = deploy_with(hardening_ssh_port=2222)
    assert result.returncode != 0
    assert "hardening_ssh_port 2222 differs from sshd's current port (22)" in result.stdout
    assert recap(result)["changed"] == 0
