"""playbooks/rollback.yml: back to the previous release through the health-gated switch,
with its workers; the scheduled job runs in whatever release serves."""

import os
import time

import httpx

import conftest
from conftest import programs, releases, serving
from load import Load


def run_job(host, https: str) -> str:
    """Start the stamp job's service as its timer does (through systemd): the row it wrote."""
    assert host.run("systemctl is-enabled app.stamp.timer").stdout.strip() == "enabled"
    assert host.run("systemctl is-active app.stamp.timer").stdout.strip() == "active"
    result = host.run("systemctl start app.stamp.service")
    assert result.rc == 0, result.stderr + host.run("journalctl -u app.stamp.service -n 20 --no-pager").stdout
    items = httpx.get(f"{https}/items", params={"limit": 1000}, verify=False).json()
    return [item for item in items if item["name"] == "stamp"][-1]["description"]


def worker_job(https: str) -> str:
    """A job for the worker: which release did it."""
    job = httpx.post(f"{https}/items", json={"name": "job:0"}, verify=False).json()["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        description = httpx.get(f"{https}/items/{job}", verify=False).json()["description"] or ""
        if description.startswith("done by "):
            return description
        time.sleep(0.2)
    return description


def test_rollback_serves_the_previous_release_without_migrating(host):
    before = serving(host)
    https = f"https://localhost:{conftest.published_port(host.backend.get_hostname(), 443)}"
    assert run_job(host, https) == f"stamped by {before['release']}"
    manifests = releases(host)
    # The newest release older than the serving one that did not fail.
    previous = next(m["id"] for m in manifests if m["id"] < before["release"] and m["status"] == "prepared")
    port = conftest.published_port(host.backend.get_hostname(), 443)
    with Load(f"https://localhost:{port}/items", clients=4, seconds=300, requests=200_000) as load:
        started = time.monotonic()
        result = conftest.ansible_playbook("rollback.yml", os.environ["MOLECULE_INVENTORY_FILE"])
        took = time.monotonic() - started
    print(f"\nrollback on one host (over SSH): {took:.1f} s; under load: {load.result.summary()}")
    assert result.returncode == 0, result.stdout[-3000:]
    assert load.result.sent > 0
    assert load.result.failed == 0, load.result.summary()
    after = serving(host)
    assert after["release"] == previous
    assert after["slot"] != before["slot"]
    health = httpx.get(f"https://localhost:{port}/health", verify=False).json()
    assert health["release"] == previous
    # No migration ran: the database stays at the newer head, which the old code tolerates.
    assert health["database_revision"] == "0003_item_tags"
    assert "alembic" not in result.stdout.lower()
    # The workers went back with the web slot; the job, unchanged, runs the rolled-back code.
    assert not [name for name in programs(host) if name.startswith(f"app-{before['slot']}")], programs(host)
    assert worker_job(https) == f"done by {previous}"
    assert run_job(host, https) == f"stamped by {previous}"


def test_rollback_to_an_unknown_release_is_refused_with_the_candidates(host):
    before = serving(host)
    result = conftest.ansible_playbook("rollback.yml", os.environ["MOLECULE_INVENTORY_FILE"], "-e", "release=no-such")
    assert result.returncode != 0
    assert "no release no-such here" in result.stdout
    manifests = releases(host)
    others = [m["id"] for m in manifests if m["id"] != before["release"] and m["status"] == "prepared"]
    assert f"Candidates: {', '.join(others)}" in result.stdout
    assert serving(host) == before
