"""Shared by every scenario's tests: hosts from Molecule's inventory, helpers to reach them."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Point testinfra's podman backend at the scenario's containers.

    Molecule passes `--connection=podman` (from .config/molecule/config.yml) but names no
    hosts; the instance names are in the inventory Molecule wrote for this scenario.
    """
    if config.option.connection != "podman" or config.option.hosts:
        return
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    if not inventory:
        raise pytest.UsageError("MOLECULE_INVENTORY_FILE is unset: run these tests through molecule verify")
    with open(inventory, encoding="utf-8") as f:
        hosts = yaml.safe_load(f)["all"]["hosts"]
    config.option.hosts = ",".join(hosts)
    config.option.ansible_inventory = None


def published_port(container: str, port: int) -> int:
    """The 127.0.0.1 port podman published for a container port."""
    out = subprocess.run(
        ["podman", "port", container, f"{port}/tcp"], check=True, capture_output=True, text=True
    ).stdout
    host, _, number = out.splitlines()[0].rpartition(":")
    assert host == "127.0.0.1", f"{container}:{port} is published on {host}, not loopback only"
    return int(number)


def image_of(container: str) -> str:
    """The image a container was made from."""
    return subprocess.run(["podman", "inspect", "--format", "{{.ImageName}}", container],
                          check=True, capture_output=True, text=True).stdout.strip()


def debian_major(host) -> str:
    """The host's Debian major release ("12", "13")."""
    return host.file("/etc/debian_version").content_string.strip().split(".")[0]


# The CPython each release's scenarios build (.config/molecule/config.yml: testbed_python).
TESTBED_PYTHON = {"12": "3.11.2", "13": "3.13.5"}


def serving(host, app_root: str = "/srv/app") -> dict:
    """What the app role recorded as serving on a host: slot, release, sha."""
    return json.loads(host.file(f"{app_root}/state.json").content_string)


def programs(host) -> dict[str, tuple[str, int]]:
    """Supervisor's processes on a host: {group:name: (state, pid)} (supervisorctl status)."""
    out = host.run("supervisorctl status").stdout
    found = {}
    for line in out.splitlines():
        name, state, *rest = line.split()
        pid = re.search(r"pid (\d+)", line)
        found[name] = (state, int(pid.group(1)) if pid else 0)
    return found


def releases(host, app_root: str = "/srv/app") -> list[dict]:
    """The release manifests on a host (the app role's bin/releases list), newest first."""
    return json.loads(host.check_output(f"{app_root}/bin/releases list {app_root}"))


@pytest.fixture(scope="module")
def https(host) -> str:
    """The base URL of nginx's HTTPS port as published on 127.0.0.1 for this host."""
    return f"https://localhost:{published_port(host.backend.get_hostname(), 443)}"


def ansible_playbook(playbook: str, inventory: str | Path, *extra: str,
                     env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run one of the project's playbooks from the repository root, as a user would
    (env: more environment variables, e.g. ANSIBLE_ROLES_PATH)."""
    extra_env, env = env or {}, {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_FORCE_COLOR", "PY_COLORS")}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", **extra_env)
    return subprocess.run(
        ["ansible-playbook", "-i", str(inventory), f"playbooks/{playbook}", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )


class AppRepo:
    """A working copy of the scenario's app repository: tests commit to it and push, as a developer would."""

    def __init__(self, bare: Path, work: Path) -> None:
        self.bare, self.work = bare, work
        self.git("clone", "--quiet", str(bare), str(work), cwd=work.parent)

    def git(self, *args: str, cwd: Path | None = None) -> str:
        env = {**os.environ, "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@localhost",
               "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@localhost"}
        return subprocess.run(
            ["git", *args], cwd=cwd or self.work, check=True, capture_output=True, text=True, env=env
        ).stdout.strip()

    def commit(self, message: str, change) -> str:
        """Apply change(work_dir), commit it on main and push; the new sha."""
        self.git("pull", "--quiet", "--ff-only", "origin", "main")
        change(self.work)
        self.git("add", "-A")
        self.git("commit", "--quiet", "-m", message)
        self.git("push", "--quiet", "origin", "HEAD:main")
        return self.git("rev-parse", "HEAD")

    def commit_to(self, branch: str, message: str, change) -> str:
        """Apply change(work_dir) on a branch made from main, commit and push it; the new
        sha. The working copy goes back to main."""
        self.git("fetch", "--quiet", "origin")
        self.git("checkout", "--quiet", "-B", branch, "origin/main")
        change(self.work)
        self.git("add", "-A")
        self.git("commit", "--quiet", "-m", message)
        self.git("push", "--quiet", "--force", "origin", f"HEAD:refs/heads/{branch}")
        sha = self.git("rev-parse", "HEAD")
        self.git("checkout", "--quiet", "main")
        return sha

    def revert(self) -> str:
        """Revert the last commit and push: a new sha with the code before it."""
        self.git("pull", "--quiet", "--ff-only", "origin", "main")
        self.git("revert", "--no-edit", "HEAD")
        self.git("push", "--quiet", "origin", "HEAD:main")
        return self.git("rev-parse", "HEAD")


@pytest.fixture(scope="session")
def app_repo(tmp_path_factory) -> AppRepo:
    scenario = os.environ["MOLECULE_SCENARIO_NAME"]
    bare = ROOT / ".cache/fixtures/scenarios" / scenario / "app.git"
    return AppRepo(bare, tmp_path_factory.mktemp("app") / "work")


@pytest.fixture(scope="session")
def inventory_file() -> str:
    return os.environ["MOLECULE_INVENTORY_FILE"]


def recap(result: subprocess.CompletedProcess) -> dict[str, int]:
    """The counts of the play recap's last host line."""
    found = re.findall(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", result.stdout)
    assert found, result.stdout[-2000:]
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, found[-1])))


@pytest.fixture(scope="session")
def scenario_vars():
    """The web variables the scenario deploys with (molecule's group_vars, rendered)."""
    group_vars = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent / "group_vars"
    merged: dict = {}
    for name in ("all", "web"):
        for candidate in (group_vars / name, group_vars / f"{name}.yml"):
            if candidate.is_file():
                merged.update(yaml.safe_load(candidate.read_text()) or {})
    return merged


# ssh-audit's hardened policy for each release.
SSH_POLICY = {"12": "Hardened Debian 12 (version 3)", "13": "Hardened Debian 13 (version 1)"}
SSH_KEY = f"{os.environ.get('MOLECULE_PROJECT_DIRECTORY', '.')}/.cache/ssh/id_ed25519"


def ssh(port: int, user: str, *options: str, command: str = "true") -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "ssh", "-p", str(port), "-i", SSH_KEY,
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            *options, f"{user}@127.0.0.1", command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def host_state(host) -> list[str]:
    """What a refused run must not change: the packages, and every path under /etc, /srv
    and /opt with its type, mode, owner and size (the app's database aside: requests write it)."""
    packages = host.check_output("dpkg-query -W -f '${Package} ${Version} ${Status}\\n'").splitlines()
    files = host.check_output(
        "find /etc /srv /opt -xdev -path '/srv/*/shared/data' -prune -o "
        "-printf '%p %y %m %u %g %s %l\\n' 2>/dev/null | sort"
    ).splitlines()
    return packages + files


def failure_message(result: subprocess.CompletedProcess) -> list[str]:
    """The lines of the first failed task's message, as the user reads them."""
    lines = result.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("fatal: [")), None)
    assert start is not None, result.stdout[-3000:]
    message = []
    for line in lines[start:]:
        if not line.strip() or line.startswith(("PLAY RECAP", "NO MORE HOSTS", "TASK [", "RUNNING HANDLER")):
            break
        message.append(line)
    return message


def said(result: subprocess.CompletedProcess) -> str:
    """stdout with whitespace runs as one space (the yaml callback wraps long lines)."""
    return " ".join(result.stdout.split())


def documented_app_writable(app_root: str = "/srv/app", app: str = "app") -> list[str]:
    """The paths roles/app/README.md says the app user can write (between its markers)."""
    text = (ROOT / "roles/app/README.md").read_text()
    block = text.split("<!-- BEGIN APP-WRITABLE -->")[1].split("<!-- END APP-WRITABLE -->")[0]
    paths = re.findall(r"`(/[^`]*)`", block)
    return [p.replace("/srv/<app>", app_root).replace("<app>", app) for p in paths]


def app_writable(host, user: str = "app") -> list[str]:
    """Every directory and file the user can write, outside /proc and /sys."""
    return host.check_output(
        f"runuser -u {user} -- find / \\( -path /proc -o -path /sys -o -path /opt/fixtures \\) -prune -o "
        "-writable \\( -type d -o -type f \\) -print 2>/dev/null || true"
    ).splitlines()


def undocumented_app_writable(host, app_root: str = "/srv/app", app: str = "app") -> list[str]:
    """What the app user can write that the README does not list (each listed path covers what is below it)."""
    allowed = documented_app_writable(app_root, app)
    return [p for p in app_writable(host, app) if not any(p == a or p.startswith(a + "/") for a in allowed)]
