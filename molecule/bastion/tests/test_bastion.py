"""Scheduled redeploys from the bastion over SSH, judged on both web hosts and in its logs.

The tests start the timer's service (as the timer would) after pushing commits to the
app repository, and read each web host's /health through nginx on its own published port.
"""

from __future__ import annotations

import json
import os
import ssl
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
    # The deploy user reaches the web hosts' deploy user with host keys checked (known_hosts,
    # no prompt): the keys the hardening role regenerated on each host.
    for name in WEB:
        out = bastion.run(f"runuser -u deploy -- ssh -o BatchMode=yes -i {HOME}/.ssh/id_ed25519 deploy@{name} true")
        assert out.rc == 0, out.stderr


def test_the_web_hosts_are_hardened(web):
    for name, host in web.items():
        sshd = dict(line.split(" ", 1) for line in host.check_output("sshd -T").splitlines() if " " in line)
        assert (sshd["permitrootlogin"], sshd["passwordauthentication"], sshd["allowusers"]) == ("no", "no", "deploy"), name
        ruleset = host.check_output("nft list ruleset")
        assert "policy drop" in ruleset, name


def test_the_app_user_can_write_only_what_the_role_documents(web):
    for name, host in web.items():
        assert conftest.undocumented_app_writable(host) == [], name


def test_the_bastion_is_hardened_like_the_web_hosts(bastion):
    """It holds the key to every web host and the vault password: judged from outside."""
    port = conftest.published_port("fd-bastion", 22)
    audit = subprocess.run(["ssh-audit", "-P", conftest.SSH_POLICY[conftest.debian_major(bastion)], "-p", str(port),
                            "127.0.0.1"], capture_output=True, text=True, timeout=120)
    assert audit.returncode == 0 and "Passed" in audit.stdout, audit.stdout[-4000:]
    assert conftest.ssh(port, "admin", command="id -un").stdout.strip() == "admin"
    # The shared prepare authorised the same key for root.
    root = conftest.ssh(port, "root")
    assert root.returncode == 255 and "Permission denied" in root.stderr, root.stderr
    password = conftest.ssh(port, "admin", "-o", "PubkeyAuthentication=no",
                            "-o", "PreferredAuthentications=password,keyboard-interactive")
    assert password.returncode == 255 and "Permission denied (publickey)" in password.stderr, password.stderr
    assert bastion.service("fail2ban").is_running
    assert bastion.file("/etc/apt/apt.conf.d/20auto-upgrades").contains('Unattended-Upgrade "1"')
    # From another host on the network: SSH answers, a listener on 8000 is dropped.
    bastion.run("systemd-run --unit fd-test-listener python3 -m http.server 8000 --bind 0.0.0.0")
    try:
        assert bastion.run("for i in $(seq 20); do python3 -c \"import urllib.request as u; "
                           "u.urlopen('http://127.0.0.1:8000/', timeout=2)\" && exit 0; sleep 0.5; done; exit 1").rc == 0
        probe = testinfra.get_host("podman://fd-bastion-hook").run(
            "python3 -c \"import socket\n"
            "for port in (22, 8000):\n"
            "    try: socket.create_connection(('fd-bastion', port), timeout=3).close(); print(port, 'open')\n"
            "    except TimeoutError: print(port, 'dropped')\n"
            "    except OSError as e: print(port, 'refused', e)\"")
        assert probe.stdout.split("\n")[:2] == ["22 open", "8000 dropped"], probe.stdout + probe.stderr
    finally:
        bastion.run("systemctl stop fd-test-listener")


def test_the_self_signed_certificate_is_a_server_certificate_sslyze_accepts(tmp_path):
    """The default install (no certificate given): trusted as itself, it passes Mozilla's check."""
    port = conftest.published_port(WEB[0], 443)
    served = tmp_path / "served.pem"
    # By name: nginx refuses a TLS handshake for a name it does not serve.
    served.write_text(ssl.get_server_certificate(("localhost", port)))
    text = subprocess.run(["openssl", "x509", "-in", str(served), "-noout", "-text"], capture_output=True, text=True,
                          check=True).stdout
    assert "CA:FALSE" in text and "TLS Web Server Authentication" in text and "DNS:localhost" in text, text
    result = subprocess.run(["sslyze", "--mozilla_config=intermediate", f"--certinfo_ca_file={served}",
                             f"localhost:{port}"], capture_output=True, text=True, timeout=300)
    assert f"localhost:{port}: OK - Compliant." in result.stdout, result.stdout[-3000:]


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
    # web2's venv gets a worker class that cannot boot: the release passes its checks in the
    # venv (the class imports), then Gunicorn's workers fail to start and the health check fails.
    venv = json.loads(web["fd-bastion-web2"].file(f"/srv/app/releases/{before['fd-bastion-web2']}/RELEASE.json").content_string)["venv"]
    worker = f"{venv}/lib/python3.11/site-packages/uvicorn_worker/__init__.py"
    web["fd-bastion-web2"].run(
        f"cp -p {worker} {worker}.orig && printf '%s\\n' '' 'def _broken(self, *args, **kwargs):'"
        f" '    raise RuntimeError(\"broken on purpose\")' 'UvicornWorker.init_process = _broken' >> {worker}")
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


PASSWORD = "s3cret-git-pass"  # in the app's HTTP URL (molecule.yml and the deploy inventory)
DEPLOY_REPO = conftest.ROOT / ".cache/fixtures/scenarios/bastion/deploy.git"


def deploy_repo_git(work, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@localhost", "GIT_COMMITTER_NAME": "test",
           "GIT_COMMITTER_EMAIL": "test@localhost", "PATH": "/usr/bin:/bin"}
    return subprocess.run(["git", *args], cwd=work, check=True, capture_output=True, text=True, env=env).stdout.strip()


@pytest.fixture(scope="module")
def deploy_repo(tmp_path_factory):
    work = tmp_path_factory.mktemp("deploy") / "work"
    subprocess.run(["git", "clone", "--quiet", str(DEPLOY_REPO), str(work)], check=True)
    return work


def test_a_lookalike_branch_and_a_tag_named_main_are_ignored(bastion, app_repo, deploy_repo):
    head = readme_commit(app_repo, "The branch's head.")
    branch_rev = deploy_repo_git(deploy_repo, "rev-parse", "HEAD")
    # Another app commit, pushed as the branch x/refs/heads/main and as the tag main.
    app_repo.git("checkout", "--quiet", "-b", "impostor")
    (app_repo.work / "README.md").write_text("impostor\n")
    app_repo.git("commit", "--quiet", "-am", "Not the main branch")
    app_repo.git("push", "--quiet", "origin", "HEAD:refs/heads/x/refs/heads/main", "HEAD:refs/tags/main")
    impostor = app_repo.git("rev-parse", "HEAD")
    app_repo.git("checkout", "--quiet", "main")
    # A tag main in the deploy repository, on a commit that is not its branch's.
    deploy_repo_git(deploy_repo, "checkout", "--quiet", "-b", "impostor")
    (deploy_repo / "IMPOSTOR").write_text("not the branch\n")
    deploy_repo_git(deploy_repo, "add", "IMPOSTOR")
    deploy_repo_git(deploy_repo, "commit", "--quiet", "-m", "Not the main branch")
    deploy_repo_git(deploy_repo, "push", "--quiet", "origin", "HEAD:refs/tags/main")
    deploy_repo_git(deploy_repo, "checkout", "--quiet", "main")
    try:
        run = start_service(bastion)
        assert run.rc == 0, run.stderr + journal(bastion)
        assert all(health(name)["release"].endswith(head[:7]) for name in WEB)
        assert f"deployed {head[:7]}" in last_outcome(bastion) or head[:7] in last_outcome(bastion)
        assert impostor[:7] not in last_outcome(bastion)
        assert bastion.check_output("runuser -u deploy -- git -C /opt/fastapi-deploy rev-parse HEAD") == branch_rev
        assert not bastion.file("/opt/fastapi-deploy/IMPOSTOR").exists
    finally:
        app_repo.git("push", "--quiet", "origin", ":refs/heads/x/refs/heads/main", ":refs/tags/main")
        deploy_repo_git(deploy_repo, "push", "--quiet", "origin", ":refs/tags/main")


def test_untracked_files_of_the_deploy_checkout_are_gone_after_a_run(bastion):
    bastion.run("runuser -u deploy -- sh -c 'echo planted > /opt/fastapi-deploy/roles/app/tasks/planted.yml'")
    assert bastion.file("/opt/fastapi-deploy/roles/app/tasks/planted.yml").exists
    run = start_service(bastion)
    assert run.rc == 0, run.stderr + journal(bastion)
    assert not bastion.file("/opt/fastapi-deploy/roles/app/tasks/planted.yml").exists


def test_no_url_with_credentials_is_written_logged_or_posted(bastion, web):
    conf = bastion.file("/etc/fastapi-deploy/run.conf")
    assert (conf.user, conf.group, conf.mode) == ("root", "deploy", 0o640)
    assert "http://fd-bastion-hook:8001/app.git" in conf.content_string
    credentials = bastion.file(f"{HOME}/.git-credentials")
    assert (credentials.user, credentials.mode) == ("deploy", 0o600)
    places = {"run.conf": conf.content_string, "the log": bastion.file(LOG).content_string,
              "the journal": journal(bastion), "the webhook": json.dumps(webhook_posts())}
    for name, host in web.items():
        release = host.check_output("readlink -f /srv/app/current")
        places[f"{name} RELEASE.json"] = host.file(f"{release}/RELEASE.json").content_string
        places[f"{name} processes"] = host.check_output("ps -eo args")
        assert json.loads(places[f"{name} RELEASE.json"])["repo"] == "http://fd-bastion-hook:8001/app.git"
    for where, text in places.items():
        assert PASSWORD not in text, where


def test_the_runner_is_sandboxed(bastion):
    show = dict(line.split("=", 1) for line in bastion.check_output(
        "systemctl show fastapi-deploy.service -p ProtectSystem -p ProtectHome -p PrivateDevices "
        "-p RestrictNamespaces -p CapabilityBoundingSet -p NoNewPrivileges -p SystemCallFilter").splitlines())
    assert show["ProtectSystem"] == "strict" and show["ProtectHome"] == "yes", show
    assert show["PrivateDevices"] == "yes" and show["NoNewPrivileges"] == "yes", show
    assert show["RestrictNamespaces"] == "yes" and show["CapabilityBoundingSet"] == "", show
    assert show["SystemCallFilter"], show


def test_with_allowed_signers_only_signed_commits_deploy(bastion, app_repo, deploy_repo, tmp_path):
    key = tmp_path / "signer"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "signer", "-f", str(key)], check=True)
    signer = f"signer@test {key.with_suffix('.pub').read_text().split()[0]} {key.with_suffix('.pub').read_text().split()[1]}"
    signing = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}"]

    def converge(signers: list[str]) -> None:
        result = conftest.ansible_playbook("bastion.yml", os.environ["MOLECULE_INVENTORY_FILE"], "-e",
                                           json.dumps({"bastion_allowed_signers": signers}))
        assert result.returncode == 0, result.stdout[-3000:]

    converge([signer])
    try:
        # The deploy repository's head is not signed: refused, naming it.
        unsigned_deploy = deploy_repo_git(deploy_repo, "rev-parse", "HEAD")
        run = start_service(bastion)
        assert run.rc != 0
        assert f"deploy repository commit {unsigned_deploy} is not signed" in last_outcome(bastion), last_outcome(bastion)

        deploy_repo_git(deploy_repo, *signing, "commit", "--quiet", "--allow-empty", "-S", "-m", "Signed")
        deploy_repo_git(deploy_repo, "push", "--quiet", "origin", "HEAD:main")
        before = {name: health(name)["release"] for name in WEB}
        unsigned = readme_commit(app_repo, "Not signed.")
        run = start_service(bastion)
        assert run.rc != 0
        assert f"app commit {unsigned} is not signed" in last_outcome(bastion), last_outcome(bastion)
        assert {name: health(name)["release"] for name in WEB} == before

        signed = app_repo.commit("Signed.", lambda work: (work / "README.md").write_text("signed\n"))
        app_repo.git(*signing, "commit", "--quiet", "--amend", "--no-edit", "-S")
        app_repo.git("push", "--quiet", "--force", "origin", "HEAD:main")
        signed = app_repo.git("rev-parse", "HEAD")
        run = start_service(bastion)
        assert run.rc == 0, run.stderr + journal(bastion)
        assert all(health(name)["release"].endswith(signed[:7]) for name in WEB)
    finally:
        converge([])
