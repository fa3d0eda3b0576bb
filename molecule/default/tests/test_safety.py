"""Failed, interrupted and concurrent deploys leave nothing that can hurt later.

Each case runs under load through nginx and ends with the host agreeing with itself:
state.json, current, the program Supervisor runs and /health name one release, and at
rest only the serving slot has processes (web and background).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import httpx

import conftest
from conftest import releases, serving
from load import Load

APP = "/srv/app"
LOCK = "/run/lock/fastapi-deploy-app.lock"


def load_on(https: str) -> Load:
    """100 requests a second: the interruptions land where they are aimed, with the CPU a
    deploy has on a real server (test_redeploy.py measures an unpaced load)."""
    return Load(f"{https}/items", clients=4, seconds=300, requests=200_000, rate=25)


def health(https: str) -> dict:
    response = httpx.get(f"{https}/health", verify=False, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def gunicorn_processes(host) -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, program name) of every Gunicorn process of the app on the host."""
    found = {}
    for line in host.check_output("ps -eo pid=,ppid=,args=").splitlines():
        pid, ppid, args = line.split(None, 2)
        if "/gunicorn " in args and "--name app-" in args:
            found[int(pid)] = (int(ppid), args.split("--name ", 1)[1].split()[0])
    return found


def supervised_pid(host, program: str) -> int:
    out = host.run(f"supervisorctl pid {program}").stdout.strip()
    return int(out) if out.isdigit() else 0


def only_the_serving_generation(host) -> tuple[bool, str]:
    """Every Gunicorn process is the serving slot's master as Supervisor runs it, or its worker."""
    program = f"app-{serving(host)['slot']}"
    master = supervised_pid(host, program)
    processes = gunicorn_processes(host)
    strays = {pid: p for pid, p in processes.items() if pid != master and p[0] != master}
    return bool(master) and master in processes and not strays, f"master {master}, strays {strays}"


def assert_agrees(host, https: str) -> dict:
    """state.json, current, the running program and /health name the same release; only
    the serving slot has a program."""
    state = serving(host)
    assert host.file(f"{APP}/current").linked_to == f"{APP}/releases/{state['release']}"
    assert health(https)["release"] == state["release"]
    programs = host.check_output("supervisorctl status").splitlines()
    running = [line.split()[0] for line in programs if line.startswith("app-")]
    # The slot's web program, and its background processes (app-<slot>.worker:...).
    assert [name for name in running if "." not in name] == [f"app-{state['slot']}"], programs
    assert {name.partition(".")[0] for name in running} == {f"app-{state['slot']}"}, programs
    assert host.file(f"/etc/supervisor/conf.d/app-{state['slot']}.conf").contains(state["release"])
    ok, detail = only_the_serving_generation(host)
    assert ok, detail
    return state


def within(seconds: float, check) -> None:
    deadline = time.monotonic() + seconds
    while True:
        ok, detail = check()
        if ok:
            return
        assert time.monotonic() < deadline, f"not within {seconds} s: {detail}"
        time.sleep(0.25)


def start_playbook(playbook: str, inventory: str, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_FORCE_COLOR", "PY_COLORS")}
    env.update(ANSIBLE_CONFIG=str(conftest.ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.Popen(
        ["ansible-playbook", "-i", inventory, f"playbooks/{playbook}", *extra], cwd=conftest.ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)


def wait_for(host, command: str, seconds: float = 240) -> None:
    within(seconds, lambda: (host.run(command).rc == 0, command))


def touch_readme(text: str):
    return lambda work: (work / "README.md").write_text((work / "README.md").read_text() + f"\n{text}\n")


def test_a_refused_worker_class_changes_nothing_the_serving_slot_restarts_with(host, https, inventory_file):
    before = serving(host)
    with load_on(https) as load:
        result = conftest.ansible_playbook("deploy.yml", inventory_file, "-e", "app_worker_class=no_such_module.Worker")
    assert result.returncode != 0, result.stdout[-3000:]
    assert "no_such_module" in result.stdout
    assert load.result.failed == 0, load.result.summary()
    assert serving(host) == before

    # Supervisor restarts the serving slot (a crash, an operator): it starts as it was.
    assert host.run(f"supervisorctl restart app-{before['slot']}").rc == 0
    within(30, lambda: (httpx.get(f"{https}/health", verify=False).status_code == 200, "no 200"))
    assert health(https)["release"] == before["release"]

    # The host reboots: the serving slot comes back, alone.
    name = host.backend.get_hostname()
    subprocess.run(["podman", "restart", "--time", "20", name], check=True, capture_output=True)
    assert conftest.published_port(name, 443) == int(https.rsplit(":", 1)[1]), "podman moved the port"
    within(90, lambda: (host.run("curl -fsk https://localhost/health --resolve localhost:443:127.0.0.1").rc == 0, "no 200"))
    assert health(https)["release"] == before["release"]
    assert_agrees(host, https)


def test_two_deploys_at_once_one_deploys_the_other_names_the_holder(host, https, app_repo, inventory_file):
    sha = app_repo.commit("Two deploys at once", touch_readme("Concurrent."))
    with load_on(https) as load:
        runs = [start_playbook("deploy.yml", inventory_file, "-e", "deploy_lock_timeout=3") for _ in range(2)]
        outputs = [run.communicate(timeout=900)[0] for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes[0] == 0 and codes[1] != 0, [o[-2000:] for o in outputs]
    refused = outputs[[run.returncode for run in runs].index(codes[1])]
    refused = " ".join(refused.split())  # the callback wraps long messages
    assert "another run is deploying here: the deploy lock" in refused, refused[-3000:]
    winner = runs[[run.returncode for run in runs].index(0)]
    assert f"pid {winner.pid}," in refused and "playbooks/deploy.yml" in refused, refused[-3000:]
    assert "Nothing was changed" in refused
    assert load.result.failed == 0, load.result.summary()
    assert assert_agrees(host, https)["sha"] == sha
    assert not host.file(LOCK).exists


def test_a_lock_left_by_a_killed_run_is_taken_over(host, https, app_repo, inventory_file):
    sha = app_repo.commit("A run that is killed", touch_readme("Killed."))
    with load_on(https) as load:
        run = start_playbook("deploy.yml", inventory_file)
        wait_for(host, f"test -f {LOCK}", 120)
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
        assert host.file(LOCK).exists
        result = conftest.ansible_playbook("deploy.yml", inventory_file)
    assert result.returncode == 0, result.stdout[-3000:]
    said = " ".join((result.stdout + result.stderr).split())  # warnings go to stderr, wrapped
    assert "which is gone: taking it over" in said, said[-3000:]
    assert f"pid {run.pid}," in said
    assert load.result.failed == 0, load.result.summary()
    assert assert_agrees(host, https)["sha"] == sha


def interrupted_then_converged(host, https, app_repo, inventory_file, interrupt, rollback: bool = False) -> None:
    """A deploy of a new commit interrupted by interrupt(run); a plain run converges; with
    rollback, a rollback then goes to the release of the commit before, and says so."""
    previous = serving(host)
    sha = app_repo.commit("A deploy that is interrupted", touch_readme(f"Interrupted {time.time()}."))
    with load_on(https) as load:
        run = start_playbook("deploy.yml", inventory_file, "-e", "app_drain_seconds=15")
        interrupt(run)
        run.wait(timeout=300)
        result = conftest.ansible_playbook("deploy.yml", inventory_file)
        assert result.returncode == 0, result.stdout[-3000:]
        state = assert_agrees(host, https)
        assert state["sha"] == sha
        assert conftest.recap(conftest.ansible_playbook("deploy.yml", inventory_file))["changed"] == 0
        if rollback:
            rolled_back = conftest.ansible_playbook("rollback.yml", inventory_file)
    assert load.result.failed == 0, load.result.summary()
    if not rollback:
        return
    assert rolled_back.returncode == 0, rolled_back.stdout[-3000:]
    after = assert_agrees(host, https)
    assert after["sha"] == previous["sha"]
    said = " ".join(rolled_back.stdout.split())  # the callback wraps long messages
    assert f"rolling back from release {state['release']} ({sha[:7]}) to release {after['release']}" in said, said[-3000:]
    # Back to the newest commit for the next case.
    assert conftest.ansible_playbook("deploy.yml", inventory_file).returncode == 0


def test_ctrl_c_during_the_drain_then_a_plain_run_leaves_one_slot(host, https, app_repo, inventory_file):
    def during_the_drain(run):
        old = serving(host)
        # The switch is recorded, then the old slot drains for 15 s.
        within(240, lambda: (serving(host)["slot"] != old["slot"], "not switched yet"))
        run.send_signal(signal.SIGINT)
    interrupted_then_converged(host, https, app_repo, inventory_file, during_the_drain, rollback=True)


def test_kill_during_the_health_check_then_a_plain_run_leaves_one_slot(host, https, app_repo, inventory_file):
    def during_the_health_check(run):
        idle = "green" if serving(host)["slot"] == "blue" else "blue"
        wait_for(host, f"test -f /etc/supervisor/conf.d/app-{idle}.conf", 240)
        os.killpg(run.pid, signal.SIGKILL)
    interrupted_then_converged(host, https, app_repo, inventory_file, during_the_health_check)


def test_killed_processes_leave_no_orphans(host, https):
    program = f"app-{serving(host)['slot']}"
    with load_on(https) as load:
        master = supervised_pid(host, program)
        host.run(f"kill -9 {master}")
        within(10, lambda: (supervised_pid(host, program) not in (0, master) and only_the_serving_generation(host)[0],
                            only_the_serving_generation(host)[1]))
        supervisord = int(host.check_output("systemctl show -P MainPID supervisor"))
        host.run(f"kill -9 {supervisord}")
        within(10, lambda: (int(host.check_output("systemctl show -P MainPID supervisor")) not in (0, supervisord)
                            and only_the_serving_generation(host)[0], only_the_serving_generation(host)[1]))
        time.sleep(1)
    assert load.result.sent > 0
    assert load.result.failed == 0, load.result.summary()
    assert_agrees(host, https)


def test_a_migration_failing_half_way_leaves_the_database_as_it_was(host, https, app_repo, inventory_file):
    def describe():
        return json.loads(host.check_output(f"runuser -u app -- {APP}/bin/sqlite-db describe {APP}/shared/data/app.db"))

    migration = '''"""Add a column{extra}."""

import sqlalchemy as sa
from alembic import op

revision = "0004_item_rank"
down_revision = "0003_item_tags"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("items", sa.Column("rank", sa.Integer(), nullable=True))
{fail}

def downgrade() -> None:
    op.drop_column("items", "rank")
'''
    path = "alembic/versions/0004_item_rank.py"
    before, database = serving(host), describe()
    app_repo.commit("A migration that fails half-way", lambda work: (work / path).write_text(
        migration.format(extra=", then fail", fail='    op.execute("UPDATE no_such_table SET x = 1")\n')))
    try:
        with load_on(https) as load:
            failed = conftest.ansible_playbook("deploy.yml", inventory_file)
        assert failed.returncode != 0
        backup = f"{APP}/shared/backups/app.db."
        said = " ".join(failed.stdout.split())
        assert f"The database was restored from the backup taken before, {backup}" in said, said[-3000:]
        assert load.result.failed == 0, load.result.summary()
        assert describe() == database
        assert serving(host) == before
    finally:
        # The same revision, fixed: it deploys (a column left behind would fail it).
        app_repo.commit("The migration, fixed", lambda work: (work / path).write_text(migration.format(extra="", fail="")))
    fixed = conftest.ansible_playbook("deploy.yml", inventory_file)
    assert fixed.returncode == 0, fixed.stdout[-3000:]
    assert health(https)["database_revision"] == "0004_item_rank"


def test_pruning_leaves_only_what_a_kept_release_uses(host, https, inventory_file, scenario_vars):
    # A deploy with another secret value, then back: the file holding it is pruned.
    env = scenario_vars["app_env"]
    changed = conftest.ansible_playbook("deploy.yml", inventory_file, "-e", json.dumps({"app_env": {**env, "OLD_SECRET": "s3cr3t-old"}}))
    assert changed.returncode == 0, changed.stdout[-3000:]
    assert host.run(f"grep -rl s3cr3t-old {APP}/shared/env").rc == 0
    back = conftest.ansible_playbook("deploy.yml", inventory_file)
    assert back.returncode == 0, back.stdout[-3000:]
    assert host.run(f"grep -rl s3cr3t-old {APP}/shared/env").rc == 1

    state = assert_agrees(host, https)
    program = host.file(f"/etc/supervisor/conf.d/app-{state['slot']}.conf").content_string
    for directory in ("shared/env", "config"):
        for name in host.check_output(f"ls {APP}/{directory}").split():
            assert f"{APP}/{directory}/{name}" in program, f"{directory}/{name} is used by nothing"
    assert not host.file(f"{APP}/gunicorn.conf.py").exists
    for venv in host.check_output(f"ls {APP}/venvs").split():
        assert host.file(f"{APP}/venvs/{venv}/.complete").exists, f"venvs/{venv} never finished building"
    kept = releases(host)
    assert len([r for r in kept if r["status"] == "prepared"]) <= 5 + 1
    assert not [r for r in kept if r["status"] == "prepared" and r.get("switched_at", "") is None and r["id"] > state["release"]]
