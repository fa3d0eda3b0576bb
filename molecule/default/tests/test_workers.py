"""One-off commands (playbooks/run.yml), and background processes and jobs leaving the host
when they leave the inventory. (Workers through a redeploy: test_redeploy.py; a worker
that crashes: test_failures.py; the job through a rollback: test_rollback.py.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from conftest import ansible_playbook, programs, recap, releases, said, serving


def run(*extra: str):
    return ansible_playbook("run.yml", os.environ["MOLECULE_INVENTORY_FILE"], *extra)


def test_run_prints_a_commands_output_and_exit_status_in_the_serving_release(host):
    release = serving(host)["release"]
    head = next(r["alembic_head"] for r in releases(host) if r["id"] == release)
    result = run("-e", json.dumps({"cmd": "alembic current && echo release=$APP_RELEASE user=$(id -un) dir=$(pwd)"}))
    assert result.returncode == 0, result.stdout[-3000:]
    text = said(result)
    assert f"{head} (head)" in text, text[-3000:]
    assert f"release={release} user=app dir=/srv/app/releases/{release}" in text
    assert "exit_status: 0" in text, text[-3000:]


def test_a_command_cut_at_a_space_is_refused_naming_cmd(host):
    result = run("-e", "cmd=alembic history")
    assert result.returncode != 0
    assert "cmd: got 'alembic', cut at a space" in said(result), result.stdout[-3000:]
    assert "TASK [app : Run the command" not in result.stdout


def test_run_hides_the_environments_values(host):
    result = run("-e", 'cmd="echo url=$DATABASE_URL"')
    assert result.returncode == 0, result.stdout[-3000:]
    assert "url=<DATABASE_URL>" in result.stdout
    assert "/srv/app/shared/data/app.db" not in result.stdout


def test_a_failing_command_fails_the_run_with_its_status_and_output(host):
    result = run("-e", json.dumps({"cmd": "echo went wrong >&2; exit 3"}))
    assert result.returncode != 0
    text = said(result)
    assert "went wrong" in text and "the command exited with status 3" in text, text[-3000:]


def test_removing_a_process_type_and_a_job_removes_them_and_a_failed_job_shows(host, scenario_vars, tmp_path):
    """A deploy without the worker and with another job: the worker's programs and the
    stamp job's units are gone; the new job, failing, is listed by systemctl --failed."""
    source = yaml.safe_load(Path(os.environ["MOLECULE_INVENTORY_FILE"]).read_text())
    name = host.backend.get_hostname()
    group_vars = {**scenario_vars, "app_processes": {},
                  "app_jobs": {"broken": {"command": "echo about to fail; exit 4", "on_calendar": "hourly"}}}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"web": {"hosts": {name: source["all"]["hosts"][name]}, "vars": group_vars}}))
    before = serving(host)

    result = ansible_playbook("deploy.yml", inventory)
    assert result.returncode == 0, result.stdout[-3000:]
    after = serving(host)
    # Started again in the other slot, without its worker.
    assert after["slot"] != before["slot"]
    assert [p for p in programs(host) if ".worker" in p] == []
    assert not host.file(f"/etc/supervisor/conf.d/app-{after['slot']}.processes.conf").exists
    assert not host.file(f"/etc/supervisor/conf.d/app-{before['slot']}.processes.conf").exists
    for unit in ("app.stamp.timer", "app.stamp.service"):
        assert not host.file(f"/etc/systemd/system/{unit}").exists
        assert host.run(f"systemctl cat {unit}").rc != 0
    assert host.run("systemctl is-active app.broken.timer").stdout.strip() == "active"

    # A job that fails is a failed unit, its output in the journal.
    assert host.run("systemctl start app.broken.service").rc != 0
    assert "app.broken.service" in host.run("systemctl --failed --no-legend").stdout
    assert "about to fail" in host.run("journalctl -u app.broken.service --no-pager").stdout

    # And a second run changes nothing.
    again = ansible_playbook("deploy.yml", inventory)
    assert again.returncode == 0 and recap(again)["changed"] == 0, again.stdout[-3000:]
