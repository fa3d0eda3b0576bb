"""The path from a git push to the host: exact refs, unprivileged builds, checked archives,
one trustworthy client address, no secret in the output."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx

import conftest
from conftest import serving

APP = "/srv/app"

UIDPKG_SETUP = '''"""A local package whose build code records the uid it ran as."""
import os
from setuptools import setup

with open("uidpkg_build_uid.py", "w") as f:
    f.write(f"UID = {os.getuid()}\\n")
setup(name="uidpkg", version="1.0", py_modules=["uidpkg_build_uid"])
'''


def venv_of(host) -> str:
    release = serving(host)["release"]
    return json.loads(host.file(f"{APP}/releases/{release}/RELEASE.json").content_string)["venv"]


def test_a_branch_named_like_the_tracked_one_and_a_tag_named_main_are_ignored(host, https, app_repo, inventory_file):
    head = app_repo.git("rev-parse", "origin/main")
    assert conftest.ansible_playbook("deploy.yml", inventory_file).returncode == 0
    assert serving(host)["sha"] == head
    # Another commit, pushed as the branch x/refs/heads/main and as a tag main.
    app_repo.git("checkout", "--quiet", "-b", "impostor")
    (app_repo.work / "README.md").write_text("impostor\n")
    app_repo.git("commit", "--quiet", "-am", "Not the main branch")
    app_repo.git("push", "--quiet", "origin", "HEAD:refs/heads/x/refs/heads/main", "HEAD:refs/tags/main")
    impostor = app_repo.git("rev-parse", "HEAD")
    app_repo.git("checkout", "--quiet", "main")
    try:
        result = conftest.ansible_playbook("deploy.yml", inventory_file)
        assert result.returncode == 0, result.stdout[-3000:]
        assert conftest.recap(result)["changed"] == 0
        assert serving(host)["sha"] == head != impostor
    finally:
        app_repo.git("push", "--quiet", "origin", ":refs/heads/x/refs/heads/main", ":refs/tags/main")


def test_an_unknown_ref_is_refused_naming_app_version(host, inventory_file):
    before = serving(host)
    result = conftest.ansible_playbook("deploy.yml", inventory_file, "-e", "app_version=no-such-branch")
    assert result.returncode != 0
    assert "- app_version: got 'no-such-branch'; expected a branch, a tag or a full 40-hex commit sha" in conftest.said(result), \
        result.stdout[-3000:]
    assert serving(host) == before


def test_dependencies_build_unprivileged_and_the_venv_is_root_owned(host, https, app_repo, inventory_file):
    def add_uidpkg(work: Path) -> None:
        (work / "uidpkg").mkdir()
        (work / "uidpkg/setup.py").write_text(UIDPKG_SETUP)
        with open(work / "requirements.txt", "a", encoding="utf-8") as f:
            f.write("./uidpkg\n")

    app_repo.commit("A local package that records its build uid", add_uidpkg)
    result = conftest.ansible_playbook("deploy.yml", inventory_file)
    assert result.returncode == 0, result.stdout[-3000:]
    venv = venv_of(host)
    uid = int(host.check_output(f"{venv}/bin/python -c 'import uidpkg_build_uid as m; print(m.UID)'"))
    assert uid not in (0, host.user("app").uid), uid
    assert uid == host.user("app-build").uid
    for path in (venv, f"{venv}/bin/python", f"{venv}/bin/gunicorn"):
        assert host.file(path).user == "root", path
    assert host.run(f"runuser -u app-build -- sh -c 'find {venv} -writable | head -1'").stdout.strip() == ""
    assert host.run(f"runuser -u app -- sh -c 'find {venv} -writable | head -1'").stdout.strip() == ""


def test_an_archive_altered_on_the_controller_is_refused_before_unpacking(host, app_repo, inventory_file):
    venv = venv_of(host)
    archives = Path(conftest.ROOT / ".cache/venv-archives")
    # The host needs that venv again without having it (as a new host of the fleet would).
    app_repo.commit("Other requirements", lambda work: (work / "requirements.txt").write_text(
        (work / "requirements.txt").read_text() + "# another venv\n"))
    assert conftest.ansible_playbook("deploy.yml", inventory_file).returncode == 0
    host.run(f"rm -rf {venv}")
    # The archive of that venv (its first entry is the venv's directory).
    altered = next(a for a in archives.glob("venv-*.tar.gz") if subprocess.run(
        ["tar", "-tzf", str(a)], capture_output=True, text=True).stdout.startswith(os.path.basename(venv) + "/"))
    saved = altered.read_bytes()
    with open(altered, "ab") as f:
        f.write(b"tampered")
    try:
        app_repo.revert()
        result = conftest.ansible_playbook("deploy.yml", inventory_file)
        assert result.returncode != 0
        assert f"{altered} does not match the sha256 noted when" in result.stdout, result.stdout[-3000:]
        assert host.run(f"test -e {venv}/bin/python").rc != 0, "something was unpacked"
    finally:
        altered.write_bytes(saved)
    result = conftest.ansible_playbook("deploy.yml", inventory_file)
    assert result.returncode == 0, result.stdout[-3000:]
    assert venv_of(host) == venv


def test_the_app_sees_the_address_nginx_saw_not_a_forged_one(https):
    seen = httpx.get(f"{https}/client", verify=False).json()["address"]
    forged = httpx.get(f"{https}/client", headers={"X-Forwarded-For": "10.0.0.1"}, verify=False).json()["address"]
    assert seen and forged == seen != "10.0.0.1"


def test_a_secret_printed_by_a_failing_start_stays_out_of_the_output(host, app_repo, inventory_file, scenario_vars):
    scenario_env = scenario_vars["app_env"]
    token = "tok-" + os.urandom(8).hex()
    before = serving(host)

    def leak(work: Path) -> None:
        main = work / "app/main.py"
        source = main.read_text()
        marker = "    engine = make_engine(settings.database_url)\n"
        assert marker in source
        main.write_text(source.replace(marker, "    print('token is', os.environ['API_TOKEN'], flush=True)\n"
                                                "    raise RuntimeError('cannot start')\n" + marker, 1)
                        .replace("\n", "\nimport os\n", 1))

    app_repo.commit("A start that prints a secret, then fails", leak)
    try:
        extra = json.dumps({"app_env": {**scenario_env, "API_TOKEN": token}})
        result = conftest.ansible_playbook("deploy.yml", inventory_file, "-v", "-e", extra)
        assert result.returncode != 0
        assert "<API_TOKEN>" in result.stdout, result.stdout[-3000:]
        assert token not in result.stdout + result.stderr
        assert serving(host) == before
    finally:
        app_repo.revert()
    assert conftest.ansible_playbook("deploy.yml", inventory_file).returncode == 0
