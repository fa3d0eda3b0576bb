"""Redeploys are a non-event for users: new code, then new requirements, under load."""

from __future__ import annotations

import json
import time

import httpx

import conftest
from conftest import serving
from load import Load

APP = "/srv/app"


def manifest(host, release: str) -> dict:
    return json.loads(host.file(f"{APP}/releases/{release}/RELEASE.json").content_string)


def redeploy_under_load(https: str, inventory_file: str, what: str):
    with Load(f"{https}/items", clients=4, seconds=300, requests=200_000) as load:
        started = time.monotonic()
        result = conftest.ansible_playbook("deploy.yml", inventory_file)
        took = time.monotonic() - started
    print(f"\nredeploy of {what}: {took:.1f} s; under load: {load.result.summary()}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert load.result.sent > 0
    assert load.result.failed == 0, load.result.summary()
    return result


def test_redeploy_of_new_code_reuses_the_venv_and_drops_no_request(host, https, app_repo, inventory_file):
    rows = httpx.get(f"{https}/items", params={"limit": 1000}, verify=False).json()
    before = serving(host)
    sha = app_repo.commit(
        "Say hello in the README",
        lambda work: (work / "README.md").write_text((work / "README.md").read_text() + "\nHello.\n"),
    )
    redeploy_under_load(https, inventory_file, "a new commit (same requirements)")
    after = serving(host)
    assert after["sha"] == sha and after["slot"] != before["slot"]
    assert httpx.get(f"{https}/health", verify=False).json()["release"] == after["release"]
    assert manifest(host, after["release"])["venv"] == manifest(host, before["release"])["venv"]
    assert httpx.get(f"{https}/items", params={"limit": 1000}, verify=False).json() == rows


def test_redeploy_with_new_requirements_builds_a_new_venv_and_drops_no_request(
    host, https, app_repo, inventory_file
):
    before = serving(host)
    sha = app_repo.commit(
        "Add humanize",
        lambda work: (work / "requirements.txt").write_text(
            (work / "requirements.txt").read_text() + "humanize==4.12.3\n"
        ),
    )
    redeploy_under_load(https, inventory_file, "changed requirements (new venv)")
    after = serving(host)
    assert after["sha"] == sha
    new_venv = manifest(host, after["release"])["venv"]
    assert new_venv != manifest(host, before["release"])["venv"]
    assert host.run(f"{new_venv}/bin/python -c 'import humanize'").rc == 0
    assert httpx.get(f"{https}/health", verify=False).json()["release"] == after["release"]
