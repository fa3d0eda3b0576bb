"""The project as AWX and Ansible Automation Platform run it: ansible-runner (their engine)
runs a playbook from a project directory, with an inventory and extra vars in its private
data directory, and leaves its job events and artifacts there. A new commit is deployed
that way (the Deploy job template), then the Status job template reports it; the artifacts
say each run succeeded, and HTTPS serves the new commit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

import conftest


def runner_dir(tmp_path: Path) -> Path:
    """A private data directory as AWX lays it out for a job: project/ (the project's
    checkout, its ansible.cfg included), inventory/ (here this scenario's), env/."""
    data = tmp_path / "runner"
    (data / "env").mkdir(parents=True)
    (data / "project").symlink_to(conftest.ROOT)
    shutil.copytree(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent, data / "inventory")
    # A job template's extra variables.
    (data / "env" / "extravars").write_text(json.dumps({"deploy_serial": "100%"}))
    return data


def run_job(data: Path, playbook: str, ident: str) -> tuple[dict, list[dict]]:
    """ansible-runner run of a playbook of the project; the run's recap (its stats event)
    and its job events, in order."""
    # Nothing of Molecule's: the project's own ansible.cfg, as in an AWX job.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_", "PY_COLORS"))}
    runner = Path(sys.executable).parent / "ansible-runner"
    started = time.monotonic()
    result = subprocess.run(
        [str(runner), "run", str(data), "--playbook", playbook, "--ident", ident],
        capture_output=True, text=True, timeout=900, env=env,
    )
    artifacts = data / "artifacts" / ident
    print(f"\n{playbook} under ansible-runner: {time.monotonic() - started:.1f} s, "
          f"status {(artifacts / 'status').read_text()}, rc {(artifacts / 'rc').read_text()}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert (artifacts / "status").read_text() == "successful"
    assert (artifacts / "rc").read_text() == "0"
    events = [json.loads(p.read_text()) for p in (artifacts / "job_events").glob("*.json")]
    events.sort(key=lambda e: e["counter"])
    (stats,) = [e["event_data"] for e in events if e["event"] == "playbook_on_stats"]
    assert stats["failures"] == {} and stats["dark"] == {}, stats
    return stats, events


def test_deploy_and_status_jobs_through_ansible_runner(host, https, app_repo, tmp_path):
    sha = app_repo.commit(
        "A deploy from AWX",
        lambda work: (work / "README.md").write_text((work / "README.md").read_text() + "\nFrom AWX.\n"),
    )
    data = runner_dir(tmp_path)
    name = host.backend.get_hostname()

    stats, events = run_job(data, "playbooks/deploy.yml", "deploy")
    plays = [e["event_data"]["play"] for e in events if e["event"] == "playbook_on_play_start"]
    assert plays == [
        "Check every input of the run before anything changes",
        "Converge the database host",
        "Prepare the hosts and the release",
        "Switch to the release",
    ]
    assert stats["changed"].get(name, 0) > 0
    switched = [e for e in events if e["event"] == "runner_on_ok" and e["event_data"]["host"] == name
                and e["event_data"]["task"].startswith("Point nginx, current and .env at the release")]
    assert switched, [e["event_data"].get("task") for e in events if e["event"] == "runner_on_ok"][-30:]
    serving = conftest.serving(host)
    assert serving["sha"] == sha
    assert httpx.get(f"{https}/health", verify=False).json()["release"] == serving["release"]

    stats, events = run_job(data, "playbooks/status.yml", "status")
    assert stats["changed"] == {} and stats["ok"].get(name), stats
    (report,) = [e["event_data"]["res"]["msg"] for e in events if e["event"] == "runner_on_ok"
                 and e["event_data"]["task"] == "Report what this host serves"]
    assert report["serving"].startswith(f"{serving['release']} ({sha[:12]}, slot {serving['slot']})"), report
    assert report["health"].endswith("HTTP 200"), report
    assert report["rollback_candidates"], report
