"""A bad release never reaches users: each kind of failure, deployed under load.

For each one a commit is pushed to a branch of its own and deploy.yml deploys that branch
while clients read the items through nginx. The deploy must fail naming the host, the step
and the lines that explain it; the old release keeps serving every request; the failed
release is kept and marked failed. Main stays good: the next good commit deploys cleanly
and prunes what failed.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import httpx
import pytest

import conftest
from conftest import programs, releases, serving
from load import Load

APP = "/srv/app"


def append(path: str, text: str) -> Callable[[Path], None]:
    def change(work: Path) -> None:
        with open(work / path, "a", encoding="utf-8") as f:
            f.write(text)

    return change


def replace(path: str, old: str, new: str) -> Callable[[Path], None]:
    def change(work: Path) -> None:
        source = (work / path).read_text()
        assert old in source, f"{old!r} is not in {path}: the sample app changed, update this test"
        (work / path).write_text(source.replace(old, new, 1))

    return change


FAILING_MIGRATION = '''"""A migration that fails: its table does not exist."""

from alembic import op

revision = "0004_broken"
down_revision = "0003_item_tags"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE no_such_table SET broken = 1")


def downgrade() -> None:
    pass
'''

UNHEALTHY = '''

from fastapi import Request
from fastapi.responses import JSONResponse


@app.middleware("http")
async def report_unhealthy(request: Request, call_next):
    if request.url.path == "/health":
        return JSONResponse({"status": "failing"}, status_code=503)
    return await call_next(request)
'''


@dataclass
class Failure:
    name: str
    change: Callable[[Path], None]
    step: str  # the step the deploy must name, in the app's terms
    says: str  # a line of the output that explains it


FAILURES = [
    Failure(
        "requirements that cannot install",
        append("requirements.txt", "fastapi-deploy-no-such-package==1.0\n"),
        "dependency install",
        "No matching distribution found for fastapi-deploy-no-such-package",
    ),
    Failure(
        "a failing migration",
        lambda work: (work / "alembic/versions/0004_broken.py").write_text(FAILING_MIGRATION),
        "migration",
        "no such table: no_such_table",
    ),
    Failure(
        "an app that fails to import",
        append("app/main.py", "\nimport no_such_module_for_tests  # noqa: E402,F401\n"),
        "import",
        "No module named 'no_such_module_for_tests'",
    ),
    Failure(
        "an app that fails to start",
        replace(
            "app/main.py",
            "    engine = make_engine(settings.database_url)\n",
            "    raise RuntimeError('injected startup failure')\n    engine = make_engine(settings.database_url)\n",
        ),
        "start",
        "RuntimeError: injected startup failure",
    ),
    Failure(
        "an app whose health check fails",
        append("app/main.py", UNHEALTHY),
        "health",
        "did not answer 200",
    ),
    # Its web slot is healthy; the worker (app_processes) is started only then, and exits.
    Failure(
        "a worker that crashes at start",
        replace(
            "app/worker.py",
            "    stopping = asyncio.Event()\n",
            "    raise RuntimeError('injected worker failure')\n    stopping = asyncio.Event()\n",
        ),
        "process worker",
        "RuntimeError: injected worker failure",
    ),
]


def items(https: str) -> list[dict]:
    response = httpx.get(f"{https}/items", params={"limit": 1000}, verify=False, timeout=10)
    response.raise_for_status()
    return response.json()


@pytest.mark.parametrize("failure", FAILURES, ids=[f.name for f in FAILURES])
def test_a_failing_release_is_never_served(failure, host, https, app_repo, inventory_file):
    httpx.post(f"{https}/items", json={"name": f"before {failure.name}"}, verify=False).raise_for_status()
    rows = items(https)
    before = serving(host)
    running = programs(host)
    branch = "broken-" + re.sub("[^a-z]+", "-", failure.name)
    bad_sha = app_repo.commit_to(branch, f"Break the app: {failure.name}", failure.change)
    # 100 requests a second: what a failing release must not disturb, with the CPU a deploy
    # has on a real server (test_redeploy.py measures an unpaced load).
    with Load(f"{https}/items", clients=4, seconds=300, requests=200_000, rate=25) as load:
        started = time.monotonic()
        result = conftest.ansible_playbook("deploy.yml", inventory_file, "-e", f"app_version={branch}")
        took = time.monotonic() - started
    print(f"\n{failure.name}: deploy failed in {took:.1f} s; under load: {load.result.summary()}")

    # The play fails, naming the host, the step and what explains it.
    assert result.returncode != 0, result.stdout[-3000:]
    hostname = host.backend.get_hostname()
    assert f'{hostname}: release ' in result.stdout, result.stdout[-3000:]
    assert f'failed at "{failure.step}' in result.stdout, result.stdout[-3000:]
    assert failure.says in result.stdout, result.stdout[-3000:]
    assert f"release {before['release']} keeps serving" in result.stdout

    # Users saw nothing: every request answered, by the old release, with all the rows.
    assert load.result.sent > 0
    assert load.result.failed == 0, load.result.summary()
    assert serving(host) == before
    health = httpx.get(f"{https}/health", verify=False).json()
    assert health["release"] == before["release"]
    assert items(https) == rows
    # Every program of the serving slot, web and workers, kept running untouched; nothing
    # of the failed release's is left.
    assert programs(host) == running

    # The failed release is kept for inspection and marked failed.
    newest = releases(host)[0]
    assert newest["sha"] == bad_sha
    assert newest["status"] == "failed", newest
    assert newest["failed_step"].startswith(failure.step), newest


def test_failed_releases_are_not_rollback_candidates(host, inventory_file):
    failed = [r["id"] for r in releases(host) if r["status"] == "failed"]
    assert failed, "the failures above left no failed release"
    result = conftest.ansible_playbook("rollback.yml", inventory_file, "-e", f"release={failed[0]}")
    assert result.returncode != 0
    assert f"no release {failed[0]} here (or it failed)" in result.stdout
    candidates = re.search(r"Candidates: ([^\n]*)", result.stdout).group(1).split(", ")
    assert candidates and failed[0] not in candidates
    assert all(r["status"] == "prepared" for r in releases(host) if r["id"] in candidates)


def test_after_the_failures_the_next_good_commit_deploys_and_prunes_what_failed(host, https, app_repo, inventory_file):
    rows = items(https)
    good_sha = app_repo.commit("After the failures", append("README.md", "\nAfter the failures.\n"))
    result = conftest.ansible_playbook("deploy.yml", inventory_file)
    assert result.returncode == 0, result.stdout[-3000:]
    after = serving(host)
    assert after["sha"] == good_sha
    assert httpx.get(f"{https}/health", verify=False).json()["release"] == after["release"]
    assert items(https) == rows
    # A venv whose build failed is pruned with the rest.
    for venv in host.check_output(f"ls {APP}/venvs").split():
        assert host.file(f"{APP}/venvs/{venv}/.complete").exists, f"venvs/{venv} never finished building"
