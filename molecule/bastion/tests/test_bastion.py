"""Scheduled redeploys from the bastion over SSH, judged on both web hosts and in its logs.

The tests start the timer's service (as the timer would) after pushing commits to the
app repository, and read each web host's /health through nginx on its own published port.
"""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest
import testinfra

import conftest

WEB = ["fd-bastion-web1", "fd-bastion-web2"]
LOG = "/var/log/fastapi-deploy/deploy.log"
HOME = "/var/lib/fastapi-deploy"


@pytest.fixture(scope="module")
def bastion():
    return testinfra.get_host("podman://fd-bastion")


@pytest.fixture(scope="module")
def web():
    return {name: testinfra.get_host(f"podman://{name}") for name in WEB}


def health(name: str) -> dict:
    port = conftest.published_port(name, 443)
    return httpx.get(f"https://localhost:{port}/health", verify=False, timeout=10).json()


def start_service(bastion) -> subprocess.CompletedProcess:
    """Start the timer's service and wait for the run to end, as the timer does."""
    return bastion.run("systemctl start fastapi-deploy.service")


def last_outcome(bastion) -> str:
    lines = [line for line in bastion.file(LOG).content_string.splitlines() if "outcome=" in line]
    return lines[-1]


def webhook_posts() -> list[dict]:
    hook = testinfra.get_host("podman://fd-bastion-hook")
    return [json.loads(line)["body"] for line in hook.file("/var/log/webhook.jsonl").content_string.splitlines()]


def readme_commit(app_repo, text: str) -> str:
    return app_repo.commit(text, lambda work: (work / "README.md").write_text((work / "README.md").read_text() + f"\n{text}\n"))


def test_the_bastion_is_set_up_for_its_deploy_user(bastion):
    user = bastion.user("deploy")
    assert user.home == HOME
    for path, mode in ((f"{HOME}/.vault-password", 0o600), (f"{HOME}/.ssh/id_ed25519", 0o600), (HOME, 0o700)):
        f = bastion.file(path)
        assert (f.user, f.mode) == ("deploy", mode), path
    assert bastion.file("/opt/fastapi-deploy/playbooks/deploy.yml").user == "deploy"
    assert bastion.run("runuser -u deploy -- /var/lib/fastapi-deploy/venv/bin/ansible-playbook --version").rc == 0
    timer = bastion.service("fastapi-deploy.timer")
    assert timer.is_enabled and timer.is_running
    assert "04:00:00" in bastion.check_output("systemctl show -p TimersCalendar --value fastapi-deploy.timer")
    # The deploy user reaches the web hosts with host keys checked (known_hosts, no prompt).
    for name in WEB:
        out = bastion.run(f"runuser -u deploy -- ssh -o BatchMode=yes -i {HOME}/.ssh/id_ed25519 root@{name} true")
        assert out.rc == 0, out.stderr


def test_a_new_commit_is_deployed_to_both_hosts_with_one_release_id(bastion, app_repo):
    sha = readme_commit(app_repo, "Deployed by the bastion.")
    started = time.monotonic()
    run = start_service(bastion)
    took = time.monotonic() - started
    print(f"\nscheduled deploy of a new commit to 2 hosts from the bastion: {took:.1f} s")
    assert run.rc == 0, run.stderr + journal(bastion)
    releases = {name: health(name)["release"] for name in WEB}
    assert len(set(releases.values())) == 1, releases
    assert next(iter(releases.values())).endswith(sha[:7])
    assert "outcome=deployed" in last_outcome(bastion)
    assert "outcome=deployed" in bastion.check_output("journalctl -u fastapi-deploy --no-pager -n 20")
    assert webhook_posts()[-1]["status"] == "deployed"
    assert webhook_posts()[-1]["app_sha"] == sha


def journal(bastion) -> str:
    return bastion.run("journalctl -u fastapi-deploy --no-pager -n 40").stdout


def test_no_new_commit_deploys_nothing_and_says_so(bastion):
    before = {name: health(name)["release"] for name in WEB}
    run = start_service(bastion)
    assert run.rc == 0, run.stderr + journal(bastion)
    outcome = last_outcome(bastion)
    assert "outcome=unchanged" in outcome and "nothing to deploy" in outcome, outcome
    assert {name: health(name)["release"] for name in WEB} == before
    assert webhook_posts()[-1]["status"] == "unchanged"


def test_a_second_run_while_one_runs_exits_on_the_lock(bastion, app_repo):
    sha = readme_commit(app_repo, "Two runs at once.")
    deploying = bastion.file(LOG).content_string.count("deploy-run: deploying")
    assert bastion.run("systemctl start --no-block fastapi-deploy.service").rc == 0
    # "deploying" is logged once the run holds the lock.
    for _ in range(100):
        if bastion.file(LOG).content_string.count("deploy-run: deploying") > deploying:
            break
        time.sleep(0.3)
    else:
        pytest.fail("the service never started deploying")
    second = bastion.run("runuser -u deploy -- /usr/local/bin/fastapi-deploy-run")
    assert second.rc == 0
    assert "another run holds" in second.stdout
    for _ in range(300):
        if bastion.run("systemctl is-active fastapi-deploy.service").stdout.strip() != "activating":
            break
        time.sleep(1)
    assert all(health(name)["release"].endswith(sha[:7]) for name in WEB)


def test_a_host_failing_its_health_check_stops_the_roll_and_is_named(bastion, web, app_repo):
    before = {name: health(name)["release"] for name in WEB}
    # web2's venv loses its worker class: the release imports, but Gunicorn cannot boot it.
    venv = json.loads(web["fd-bastion-web2"].file(f"/srv/app/releases/{before['fd-bastion-web2']}/RELEASE.json").content_string)["venv"]
    worker = f"{venv}/lib/python3.11/site-packages/uvicorn_worker/__init__.py"
    web["fd-bastion-web2"].run(f"cp -p {worker} {worker}.orig && echo 'raise ImportError(\"broken on purpose\")' > {worker}")
    try:
        sha = readme_commit(app_repo, "Web2 cannot boot this one.")
        run = start_service(bastion)
        assert run.rc != 0
        outcome = last_outcome(bastion)
        assert sha[:7] in outcome, run.stderr + journal(bastion)
        assert "outcome=failed" in outcome and "fd-bastion-web2" in outcome and "fd-bastion-web1" not in outcome, outcome
        assert "broken on purpose" in bastion.file(LOG).content_string
        assert health("fd-bastion-web1")["release"].endswith(sha[:7])
        assert health("fd-bastion-web2")["release"] == before["fd-bastion-web2"]
        assert webhook_posts()[-1]["failed_hosts"] == ["fd-bastion-web2"]
    finally:
        web["fd-bastion-web2"].run(f"mv {worker}.orig {worker}")
    # Repaired, the next run brings web2 to the branch head.
    run = start_service(bastion)
    assert run.rc == 0, run.stderr + journal(bastion)
    assert health("fd-bastion-web2")["release"].endswith(sha[:7])
