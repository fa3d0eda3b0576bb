"""Two apps on one machine: `app` (app.example.test, on web1 and web2) and `admin`
(admin.example.test), the inventory host admin@fd-acme-web1 on web1's container
(deploy_machine). Each has its own user, root, Supervisor programs, nginx site and
certificate from Pebble; a deploy or rollback of one leaves the other's processes and
nginx's own (master and workers: no reload) as they were.

Runs before test_acme.py (its file name): the names and certificates as converged, Pebble
up (nothing here asks it for anything).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
import testinfra

import conftest
from conftest import ansible_playbook, programs, recap, serving
from load import Load
from test_acme import names_of, served_chain

MACHINE = "fd-acme-web1"
ADMIN = "admin@fd-acme-web1"
APPS = {"app": "app.example.test", "admin": "admin.example.test"}


@pytest.fixture(scope="module")
def machine():
    return testinfra.get_host(f"podman://{MACHINE}")


@pytest.fixture(scope="module")
def inventory(inventory_file) -> Path:
    """Molecule's inventory directory: its generated file, and the extra one with admin."""
    return Path(inventory_file).parent


def health(name: str) -> dict:
    """/health of the app serving this name on web1, through nginx (TLS SNI and Host)."""
    port = conftest.published_port(MACHINE, 443)
    with httpx.Client(verify=False, timeout=10) as client:
        response = client.get(f"https://127.0.0.1:{port}/health", headers={"Host": name},
                              extensions={"sni_hostname": name})
    assert response.status_code == 200, response.text
    return response.json()


def nginx_processes(host) -> list[int]:
    """nginx's master and worker pids: a reload replaces the workers."""
    master = int(host.check_output("cat /run/nginx.pid"))
    workers = sorted(map(int, host.check_output(f"pgrep -P {master}").split()))
    return [master, *workers]


def programs_of(host, app: str) -> dict[str, tuple[str, int]]:
    return {name: state for name, state in programs(host).items() if name.startswith(f"{app}-")}


def test_both_apps_are_served_by_name_each_with_its_own_certificate_user_and_programs(machine):
    leaves = {}
    for app, name in APPS.items():
        state = serving(machine, f"/srv/{app}")
        assert health(name)["release"] == state["release"], app
        leaf = served_chain(MACHINE, name)[0]
        assert names_of(leaf) == [name]
        leaves[app] = leaf
        user = machine.user(app)
        assert user.exists and user.home == f"/srv/{app}" and user.shell == "/usr/sbin/nologin"
        assert machine.file(f"/etc/nginx/sites-enabled/{app}.conf").contains(f"server_name {name};")
        running = [n for n, (s, _) in programs_of(machine, app).items() if s == "RUNNING"]
        assert running == [f"{app}-{state['slot']}"], running
        print(f"\n{app}: {name}, release {state['release']} in slot {state['slot']}, certificate serial "
              f"{format(leaf.serial_number, 'X')}")
    assert leaves["app"].serial_number != leaves["admin"].serial_number
    assert leaves["app"].public_key() != leaves["admin"].public_key()
    # Each app's database is its own.
    assert machine.file("/srv/admin/shared/data/app.db").user == "admin"
    assert machine.file("/srv/app/shared/data/app.db").user == "app"


def test_redeploying_one_app_leaves_the_other_app_and_nginx_untouched(machine, app_repo, inventory):
    """admin gets a new commit (--limit admin, as an operator deploys one app) under load
    on both names: no failed request on either, app's programs and nginx's processes keep
    their pids."""
    app_before, nginx_before = programs_of(machine, "app"), nginx_processes(machine)
    app_state, admin_state = serving(machine, "/srv/app"), serving(machine, "/srv/admin")
    sha = app_repo.commit("admin: a new release", lambda work: (work / "ADMIN_RELEASE").write_text(f"{time.time_ns()}\n"))
    port = conftest.published_port(MACHINE, 443)
    loads = {app: Load(f"https://127.0.0.1:{port}/health", clients=2, seconds=300, requests=100_000,
                       server_name=name).start() for app, name in APPS.items()}
    try:
        result = ansible_playbook("deploy.yml", inventory, "--limit", "admin")
    finally:
        results = {app: load.stop() for app, load in loads.items()}
    assert result.returncode == 0, result.stdout[-3000:]
    admin_after = serving(machine, "/srv/admin")
    assert admin_after["sha"] == sha and admin_after["release"] != admin_state["release"]
    assert health(APPS["admin"])["release"] == admin_after["release"]
    assert serving(machine, "/srv/app") == app_state
    assert programs_of(machine, "app") == app_before
    assert nginx_processes(machine) == nginx_before
    for app, load in results.items():
        print(f"\n{app} during admin's deploy: {load.summary()}")
        assert load.sent > 100 and load.failed == 0, (app, load.summary())
    assert recap(result)["failed"] == 0


def test_rolling_back_one_app_leaves_the_other_app_and_nginx_untouched(machine, inventory):
    app_before, nginx_before = programs_of(machine, "app"), nginx_processes(machine)
    app_state, admin_state = serving(machine, "/srv/app"), serving(machine, "/srv/admin")
    result = ansible_playbook("rollback.yml", inventory, "--limit", "admin")
    assert result.returncode == 0, result.stdout[-3000:]
    admin_after = serving(machine, "/srv/admin")
    assert admin_after["release"] != admin_state["release"]
    assert health(APPS["admin"])["release"] == admin_after["release"]
    assert health(APPS["app"])["release"] == app_state["release"]
    assert serving(machine, "/srv/app") == app_state
    assert programs_of(machine, "app") == app_before
    assert nginx_processes(machine) == nginx_before
    print(f"\nadmin rolled back {admin_state['release']} -> {admin_after['release']}; app still "
          f"{app_state['release']}, its programs and nginx's pids unchanged")


def test_the_host_layer_runs_once_per_machine_and_each_app_keeps_its_site(machine, inventory):
    """The host layer's roles on a run for both apps: web1's tasks run for fd-acme-web1
    only (admin@fd-acme-web1 skips them), nginx's site part for both; nothing changes."""
    nginx_before = nginx_processes(machine)
    result = ansible_playbook("deploy.yml", inventory, "--tags", "base,python,supervisor,nginx")
    assert result.returncode == 0, result.stdout[-3000:]
    # The play that runs the host layer (the check before it reads every host's variables).
    prepare = result.stdout.split("PLAY [Prepare the hosts and the release]")[1].split("\nPLAY [")[0]
    blocks = re.split(r"\n(?=TASK \[)", prepare)
    ran: dict[str, set[str]] = {}
    for block in blocks:
        task = re.match(r"TASK \[(\w+) : ", block)
        if task:
            for outcome, host in re.findall(r"^(ok|changed|skipping): \[([^\]]+)\]", block, re.M):
                if outcome != "skipping":
                    ran.setdefault(task.group(1), set()).add(host)
    for role in ("base", "python", "supervisor"):
        assert MACHINE in ran[role] and ADMIN not in ran[role], (role, ran.get(role))
    assert {MACHINE, ADMIN} <= ran["nginx"], ran["nginx"]
    # Each host's recap: nothing changed, nginx not reloaded.
    recaps = dict(re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", result.stdout, re.M))
    assert recaps.get(ADMIN) == "0" and recaps.get(MACHINE) == "0", recaps
    assert nginx_processes(machine) == nginx_before
    print(f"\nhost layer on {MACHINE} only; tasks run per role: "
          + ", ".join(f"{role}: {sorted(hosts)}" for role, hosts in sorted(ran.items())))


def test_two_apps_of_one_name_on_a_machine_are_refused_before_any_change(machine, inventory):
    """-e app_name=app gives admin@fd-acme-web1 the name of web1's app: refused, naming it."""
    state = conftest.host_state(machine)
    result = ansible_playbook("deploy.yml", inventory, "-e", "app_name=app")
    assert result.returncode != 0, result.stdout[-3000:]
    text = conftest.said(result)
    assert "- app_name: got 'app'; expected a name no other app on machine fd-acme-web1 has" in text, result.stdout[-3000:]
    # web2's app is alone on its machine: only the two hosts of web1 are refused.
    assert "fatal: [fd-acme-web2]" not in result.stdout and "fatal: [fd-acme-web1]" in result.stdout, result.stdout[-3000:]
    assert recap(result)["changed"] == 0
    assert conftest.host_state(machine) == state
    print("\n" + "\n".join(conftest.failure_message(result)))
