"""Redeploys are a non-event for users: new code, then new requirements, under load.

The background workers (app_processes: the sample app's queue worker) switch with the web
slot: the new release's start once its web slot is healthy, the old release's are asked
to stop after the switch and finish the job in hand first."""

from __future__ import annotations

import json
import threading
import time

import httpx

import conftest
from conftest import programs, serving
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


def queue_job(https: str, seconds: int) -> int:
    """A job for the sample app's worker: an item it works on for SECONDS; its id."""
    response = httpx.post(f"{https}/items", json={"name": f"job:{seconds}"}, verify=False)
    response.raise_for_status()
    return response.json()["id"]


def job_state(https: str, job: int, want: str, timeout: float = 30) -> str:
    """The job's description once it starts with WANT (or whatever it is at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        description = httpx.get(f"{https}/items/{job}", verify=False).json()["description"] or ""
        if description.startswith(want) or time.monotonic() > deadline:
            return description
        time.sleep(0.2)


class JobAtTheSwitch:
    """Queues a job of SECONDS as soon as the deploy writes the new slot's program: the old
    release's workers (idle, asking every 0.5 s) claim it while the new slot starts, so it
    is in hand when they are asked to stop, however long the deploy took to get there."""

    def __init__(self, host, https: str, program_file: str, seconds: int) -> None:
        self.id: int | None = None

        def watch() -> None:
            deadline = time.monotonic() + 600
            while not host.file(program_file).exists and time.monotonic() < deadline:
                time.sleep(0.1)
            self.id = queue_job(https, seconds)

        self.thread = threading.Thread(target=watch, daemon=True)
        self.thread.start()

    def job(self) -> int:
        self.thread.join(timeout=60)
        assert self.id is not None, "the new slot's program never appeared"
        return self.id


def data(https: str) -> list[dict]:
    """The items that are not the worker's jobs (which it changes)."""
    items = httpx.get(f"{https}/items", params={"limit": 1000}, verify=False).json()
    return [item for item in items if not item["name"].startswith("job:")]


def workers(host, slot: str) -> dict[str, tuple[str, int]]:
    return {name: info for name, info in programs(host).items() if name.startswith(f"app-{slot}.worker:")}


def test_redeploy_of_new_code_reuses_the_venv_drops_no_request_and_switches_the_workers(
    host, https, app_repo, inventory_file
):
    before = serving(host)
    old_workers = workers(host, before["slot"])
    assert len(old_workers) == 2 and all(state == "RUNNING" for state, _ in old_workers.values()), programs(host)
    rows = data(https)
    sha = app_repo.commit(
        "Say hello in the README",
        lambda work: (work / "README.md").write_text((work / "README.md").read_text() + "\nHello.\n"),
    )
    new_slot = "green" if before["slot"] == "blue" else "blue"
    at_the_switch = JobAtTheSwitch(host, https, f"/etc/supervisor/conf.d/app-{new_slot}.conf", 30)
    redeploy_under_load(https, inventory_file, "a new commit (same requirements), a worker mid-job")
    long_job = at_the_switch.job()
    after = serving(host)
    assert after["sha"] == sha and after["slot"] != before["slot"]
    assert httpx.get(f"{https}/health", verify=False).json()["release"] == after["release"]
    assert manifest(host, after["release"])["venv"] == manifest(host, before["release"])["venv"]
    assert data(https) == rows

    # The old worker was asked to stop mid-job, finished it, and only then exited.
    old_logs = host.run(f"cat /var/log/supervisor/app-{before['slot']}.worker-*.log").stdout
    assert f"Asked to stop while on job {long_job}: finishing it first" in old_logs, old_logs[-2000:]
    assert job_state(https, long_job, "done by ", timeout=0) == f"done by {before['release']}"
    # Only the new release's workers run, and they run its code.
    assert not workers(host, before["slot"]), programs(host)
    assert len(workers(host, after["slot"])) == 2
    assert job_state(https, queue_job(https, 0), "done by ") == f"done by {after['release']}"


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
