"""Bad input stops a deploy before any change, naming every bad variable in a few lines.

Each case runs deploy.yml with the scenario's variables and one mistake a user makes in
an inventory, then checks: a non-zero exit, the message naming the variable at fault (and
no valid one), the whole message under 15 lines, no change reported, the host's packages
and files under /etc, /srv and /opt as before, and the same release serving.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml

from conftest import ROOT, ansible_playbook, failure_message, host_state, recap, said, serving


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


def deploy(inventory_file: Path, *extra: str):
    return ansible_playbook("deploy.yml", inventory_file, *extra)


def without(name: str) -> Callable[[dict], dict]:
    return lambda v: {k: value for k, value in v.items() if k != name}


def renamed(old: str, new: str) -> Callable[[dict], dict]:
    return lambda v: {(new if k == old else k): value for k, value in v.items()}


def env(**changes) -> Callable[[dict], dict]:
    return lambda v: {**v, "app_env": {k: x for k, x in {**v["app_env"], **changes}.items() if x is not None}}


@dataclass
class Refusal:
    name: str
    change: Callable[[dict], dict] | dict
    says: list[str]  # each in the message (whitespace normalised)
    not_named: list[str] = field(default_factory=list)  # valid variables the message must not blame
    extra: tuple[str, ...] = ()  # ansible-playbook's own arguments (extra vars)


REFUSALS = [
    Refusal("a list for app_version", {"app_version": ["main", "dev"]}, ["- app_version: got a list"]),
    Refusal("a list for app_repo", lambda v: {**v, "app_repo": [v["app_repo"]]}, ["- app_repo: got a list"]),
    Refusal("a branch that does not exist", {"app_version": "no-such-branch"},
            ["- app_version: got 'no-such-branch'; expected a branch, a tag or a full 40-hex commit sha of app_repo"]),
    Refusal("a path that is no repository", {"app_repo": "file:///opt/fixtures"},
            ["- app_repo: expected a git repository the host can read; file:///opt/fixtures"]),
    Refusal("a typo in a variable's name", renamed("app_repo", "app_repository"),
            ["- app_repo: is required", "- app_repository: is not a variable of any role here (a typo?); did you mean app_repo?"]),
    Refusal("a missing app_repo", without("app_repo"), ["- app_repo: is required"]),
    # Every mistake below at once, in three roles: one run reports them all, each line naming
    # only its variable (a space in a server name does not blame the valid nginx_site_name).
    Refusal("every bad variable at once, from three roles",
            lambda v: {**env(DATABASE_URL="sqlite+aiosqlite:///app.db")(v),
                       "nginx_server_names": ["local host"], "nginx_limit_req_rate": "lots",
                       "nginx_upstream_keepalive_time": "half a second", "nginx_access_log_buffer": "plenty",
                       "nginx_static_location": "/static { }", "app_drain_seconds": -1, "python_version": "3.13"},
            ["8 bad inputs", '- nginx_server_names: got ["local host"]; expected a non-empty list of host names',
             "- nginx_limit_req_rate: got 'lots'; expected a rate like 10r/s",
             "- nginx_upstream_keepalive_time: got 'half a second'; expected an nginx time like 500ms",
             "- nginx_access_log_buffer: got 'plenty'; expected a size",
             "- nginx_static_location: got '/static { }'; expected a URL path starting and ending with /",
             "- app_drain_seconds: got -1; expected 0 or more seconds",
             "- python_version: got '3.13'; expected a CPython version",
             "- app_env.DATABASE_URL: expected an absolute SQLite path, not the relative app.db"],
            not_named=["nginx_site_name"]),
    # The names first: app_env's values are checked once its names are good.
    Refusal("a bad environment variable name", env(**{"MY-VAR": "1"}),
            ["- app_env: expected environment variable names", "not MY-VAR"]),
    Refusal("a number where a string goes", {"app_version": 1.0}, ["- app_version: got a number (1.0); expected a string"]),
    # python_version well formed, but no archive, no tarball, and python.org unreachable:
    # refused before pyenv, the libraries or the build packages change.
    Refusal("a python_version whose source cannot be had",
            {"python_version": "3.13.99", "python_source_tarball": "", "python_source_sha256": ""},
            ["python_version: CPython 3.13.99 cannot be had"]),
    # Background processes and jobs: a bad name, an entry without its command, a calendar
    # the host's systemd rejects, all reported at once.
    Refusal("bad process and job definitions",
            {"app_processes": {"bad-name": {"command": "python -m app.worker"}, "worker": {"count": 2}},
             "app_jobs": {"nightly": {"command": "python -m app.jobs stamp", "on_calendar": "every tuesday-ish"}}},
            ["2 bad inputs", "- app_processes: got {",
             "expected process types, each NAME: {command: ..., count: ...}: bad-name: not a name",
             "worker.command: is required", "- app_jobs: got {",
             "expected on_calendar values systemd accepts (systemd-analyze calendar); not \"every tuesday-ish\""]),
    # The rolling switch's extra vars: a list written with a space after its comma reaches
    # Ansible cut at the space ("[1,"), which the switch play would find only after the
    # release was prepared.
    Refusal("a batch list cut at a space, and a share of failures over 100", {},
            ["- deploy_serial: got '[1,'; expected hosts per batch",
             "- deploy_max_fail_percentage: got '150'; expected a percentage from 0 to 100"],
            extra=("-e", 'deploy_serial=[1, "25%"]', "-e", "deploy_max_fail_percentage=150")),
]


@pytest.mark.parametrize("refusal", REFUSALS, ids=[r.name for r in REFUSALS])
def test_bad_input_is_refused_before_any_change_naming_the_variable(refusal, inventory, scenario_vars, host):
    before, state = serving(host), host_state(host)
    group_vars = refusal.change(scenario_vars) if callable(refusal.change) else {**scenario_vars, **refusal.change}
    result = deploy(inventory(group_vars), *refusal.extra)

    assert result.returncode != 0, result.stdout[-3000:]
    text = said(result)
    for words in refusal.says:
        assert words in text, result.stdout[-3000:]
    message = failure_message(result)
    assert len(message) < 15, "\n".join(message)
    for name in refusal.not_named:
        assert name not in "\n".join(message), "\n".join(message)
    assert recap(result)["changed"] == 0
    assert host_state(host) == state
    assert serving(host) == before


@pytest.mark.parametrize("name, value, step", [
    ("app_worker_class", "uvicorn_worker.NoSuchWorker", "app_worker_class"),
    ("app_asgi_module", "app.main:no_such_app", "app_asgi_module"),
], ids=["worker-class", "asgi-module"])
def test_a_worker_class_or_asgi_app_the_release_lacks_is_refused_before_any_slot_starts(
        inventory, scenario_vars, host, name, value, step):
    """Checked in the venv with the new settings: the serving release, untouched, keeps serving."""
    before = serving(host)
    result = deploy(inventory({**scenario_vars, name: value}))
    assert result.returncode != 0
    text = said(result)
    assert f'release {before["release"]} failed at "{step}"; nothing changed: it keeps serving as before.' in text, text[-3000:]
    assert f"{name}: {value}" in text or f"({name} is {value})" in text, text[-3000:]
    assert "\\n" not in text
    assert serving(host) == before
    status = host.run("supervisorctl status").stdout
    assert f"app-{before['slot']}" in status and "RUNNING" in status
    other = "green" if before["slot"] == "blue" else "blue"
    assert not any(line.startswith(f"app-{other}") and "RUNNING" in line for line in status.splitlines()), status


def test_missing_setting_stops_the_deploy_and_the_old_release_keeps_serving(inventory, scenario_vars, host):
    before = serving(host)
    result = deploy(inventory(env(ENVIRONMENT=None)(scenario_vars)))
    assert result.returncode != 0
    text = said(result)
    assert 'failed at "settings"' in text, text[-3000:]
    assert "ENVIRONMENT" in text and "Field required" in text, text[-3000:]
    assert serving(host) == before
    status = host.run("supervisorctl status").stdout
    assert f"app-{before['slot']}" in status and "RUNNING" in status
    health = host.run("curl -sk --resolve localhost:443:127.0.0.1 https://localhost/health")
    assert json.loads(health.stdout)["release"] == before["release"]


def test_a_site_file_nginx_rejects_is_put_back_and_the_old_one_keeps_serving(host, inventory_file, tmp_path):
    """A site template change (here, in a copy of the roles) that nginx -t rejects."""
    roles = tmp_path / "roles"
    shutil.copytree(ROOT / "roles", roles)
    template = roles / "nginx/templates/site.conf.j2"
    # The first server block's own line (not "server {{ ... }}" of the ACME peers' upstream,
    # which this scenario does not render).
    text, found = re.subn(r"^server \{$", "server {\n    no_such_directive on;", template.read_text(), count=1, flags=re.M)
    assert found == 1
    template.write_text(text)
    site = "/etc/nginx/sites-enabled/app.conf"
    before, listing = host.file(site).content_string, host.check_output("ls -a /etc/nginx/sites-enabled")

    result = ansible_playbook("deploy.yml", inventory_file, "--tags", "nginx", env={"ANSIBLE_ROLES_PATH": str(roles)})

    assert result.returncode != 0, result.stdout[-3000:]
    text = said(result)
    assert "nginx -t rejected the new configuration, which was put back as it was" in text, text[-3000:]
    assert 'unknown directive "no_such_directive"' in text, text[-3000:]
    assert host.file(site).content_string == before
    assert host.check_output("ls -a /etc/nginx/sites-enabled") == listing
    assert host.run("nginx -t").rc == 0
    # A restart loads what is on disk: the old site, serving.
    host.check_output("systemctl restart nginx")
    health = host.run("curl -sk --resolve localhost:443:127.0.0.1 https://localhost/health")
    assert json.loads(health.stdout)["status"] == "ok", health.stdout
