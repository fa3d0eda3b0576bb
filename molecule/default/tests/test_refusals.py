"""Bad input stops a deploy early, naming the variable, and the serving release stays."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from conftest import ansible_playbook, recap, serving


@pytest.fixture(scope="module")
def inventory(host, tmp_path_factory):
    """The scenario's inventory, with its web group variables replaced by the test's."""
    source = yaml.safe_load(Path(os.environ["MOLECULE_INVENTORY_FILE"]).read_text())
    name = host.backend.get_hostname()
    hostvars = source["all"]["hosts"][name]

    def write(group_vars: dict) -> Path:
        path = tmp_path_factory.mktemp("inventory") / "hosts.yml"
        path.write_text(yaml.safe_dump({"web": {"hosts": {name: hostvars}, "vars": group_vars}}))
        return path

    return write


def deploy(inventory_file: Path):
    return ansible_playbook("deploy.yml", inventory_file)


def test_missing_app_repo_fails_before_any_change(inventory, scenario_vars, host):
    before = serving(host)
    without_repo = {k: v for k, v in scenario_vars.items() if k != "app_repo"}
    result = deploy(inventory(without_repo))
    assert result.returncode != 0
    assert "app_repo" in result.stdout
    assert recap(result)["changed"] == 0
    assert serving(host) == before


@pytest.mark.parametrize("name, value, says, conf", [
    ("nginx_upstream_keepalive_time", "half a second", "must be an nginx time like 500ms", "/etc/nginx/upstreams/app.conf"),
    ("nginx_access_log_buffer", "plenty", "must be a size like 64k or 1m, or empty", "/etc/nginx/nginx.conf"),
    ("nginx_static_location", "/static { }", "must be a URL path starting and ending with /", "/etc/nginx/sites-enabled/app.conf"),
    ("nginx_limit_req_rate", "lots", "must be a rate like 10r/s or 600r/m, or empty", "/etc/nginx/sites-enabled/app.conf"),
], ids=["keepalive-time", "access-log-buffer", "static-location", "limit-req-rate"])
def test_a_malformed_nginx_setting_is_refused_before_nginx_changes(inventory, scenario_vars, host, name, value, says, conf):
    before = serving(host)
    result = deploy(inventory({**scenario_vars, name: value}))
    assert result.returncode != 0
    assert f"{name} {says}" in result.stdout
    assert recap(result)["changed"] == 0
    assert serving(host) == before
    assert value not in host.file(conf).content_string


def test_relative_sqlite_url_is_refused_with_the_reason(inventory, scenario_vars):
    relative = {**scenario_vars, "app_env": {**scenario_vars["app_env"], "DATABASE_URL": "sqlite+aiosqlite:///app.db"}}
    result = deploy(inventory(relative))
    assert result.returncode != 0
    assert "app_env.DATABASE_URL is a relative SQLite path" in result.stdout
    assert recap(result)["changed"] == 0


def test_missing_setting_stops_the_deploy_and_the_old_release_keeps_serving(inventory, scenario_vars, host):
    before = serving(host)
    env = {k: v for k, v in scenario_vars["app_env"].items() if k != "ENVIRONMENT"}
    result = deploy(inventory({**scenario_vars, "app_env": env}))
    assert result.returncode != 0
    assert "ENVIRONMENT (Field required)" in result.stdout
    assert serving(host) == before
    status = host.run("supervisorctl status").stdout
    assert f"app-{before['slot']}" in status and "RUNNING" in status
    health = host.run("curl -sk --resolve localhost:443:127.0.0.1 https://localhost/health")
    assert json.loads(health.stdout)["release"] == before["release"]
