"""The collection as users get it: built with ansible-galaxy, installed into an empty
directory, then read by ansible-doc, found by a user's own playbook, and judged by
ansible-lint's production profile and ansible-test sanity, as a collection on Galaxy is.

(The debian12 scenario deploys the app with the installed collection's roles by name.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "meta/argument_specs.yml").exists())


def run(*argv: str | Path, cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, argv))}:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def user_env(collections: Path) -> dict:
    """A user's shell: only the installed collection (and Ansible's bundled ones), none of
    this repository's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR="1", PATH=f"{BIN}:{env.get('PATH', '')}")
    return env


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build")
    run(BIN / "ansible-galaxy", "collection", "build", "--output-path", out, ROOT, cwd=out)
    (built,) = out.glob("fastapi_deploy-stack-*.tar.gz")
    return built


@pytest.fixture(scope="module")
def user(tarball, tmp_path_factory) -> Path:
    """An empty directory, the collection installed into its collections/."""
    home = tmp_path_factory.mktemp("user")
    run(BIN / "ansible-galaxy", "collection", "install", "-p", home / "collections", tarball,
        cwd=home, env=user_env(home / "collections"))
    return home


@pytest.fixture(scope="module")
def installed(user) -> Path:
    return user / "collections/ansible_collections/fastapi_deploy/stack"


def test_the_tarball_holds_what_users_need_and_nothing_else(tarball):
    with tarfile.open(tarball) as tar:
        names = {m.name.removeprefix("./") for m in tar.getmembers()}
    version = yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]
    assert tarball.name == f"fastapi_deploy-stack-{version}.tar.gz"
    wanted = {"MANIFEST.json", "FILES.json", "README.md", "CHANGELOG.md", "meta/runtime.yml",
              "LICENSES/MIT.txt", "LICENSES/GPL-3.0-or-later.txt",
              "playbooks/deploy.yml", "playbooks/rollback.yml", "playbooks/bastion.yml", "playbooks/status.yml",
              "playbooks/restore.yml", "plugins/test/batches.py",
              "plugins/modules/probe.py", "plugins/action/check_inputs.py", "plugins/filter/redact.py",
              "plugins/test/pending.py", "inventory/prod/hosts.yml"}
    wanted |= {f"roles/{r}/{f}" for r in ROLES for f in ("tasks/main.yml", "meta/argument_specs.yml", "README.md")}
    assert wanted <= names, sorted(wanted - names)
    # Development only: tests, the benchmark, the sample app, the test bed, caches.
    for prefix in ("tests/", "bench/", "molecule/", "examples/", "scripts/", "collections/", ".cache", ".venv",
                   ".git", ".ci", ".config", "inventory/local", "ansible.cfg", "requirements.txt"):
        assert not [n for n in names if n == prefix.rstrip("/") or n.startswith(prefix)], prefix
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


@pytest.mark.parametrize("role", ROLES)
def test_ansible_doc_shows_each_variable_of_the_installed_role(user, role):
    spec = yaml.safe_load((ROOT / f"roles/{role}/meta/argument_specs.yml").read_text())["argument_specs"]["main"]
    shown = run(BIN / "ansible-doc", "-t", "role", f"fastapi_deploy.stack.{role}", cwd=user,
                env=user_env(user / "collections")).stdout
    missing = [name for name in spec["options"] if name not in shown]
    assert not missing, f"ansible-doc -t role fastapi_deploy.stack.{role} does not show {missing}"
    assert spec["short_description"] in " ".join(shown.split())


def test_a_users_playbook_finds_the_installed_roles_and_playbooks_by_name(user):
    (user / "inventory.yml").write_text("web:\n  hosts:\n    web1.example.com:\n")
    (user / "site.yml").write_text(
        "- name: A site of the user's own\n  hosts: web\n  roles:\n"
        + "".join(f"    - fastapi_deploy.stack.{r}\n" for r in ("hardening", "base", "python", "supervisor", "nginx", "app"))
        + "- name: And the collection's own deploy\n  ansible.builtin.import_playbook: fastapi_deploy.stack.deploy\n")
    env = user_env(user / "collections")
    run(BIN / "ansible-playbook", "--syntax-check", "-i", "inventory.yml", "site.yml", cwd=user, env=env)
    for playbook in ("deploy", "rollback", "status", "restore", "bastion"):
        run(BIN / "ansible-playbook", "--syntax-check", "-i", "inventory.yml", f"fastapi_deploy.stack.{playbook}",
            cwd=user, env=env)


def test_ansible_lint_production_profile_passes_on_the_built_collection(user, installed):
    result = run(BIN / "ansible-lint", "--profile", "production", "--offline", cwd=installed,
                 env=user_env(user / "collections"))
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr


def test_ansible_test_sanity_passes_on_the_built_collection(user, installed):
    """ansible-test fetches pip's bootstrap script from a host this test bed cannot reach;
    it takes it from its cache when present, and a stand-in that runs the interpreter's own
    ensurepip does the same job (see docs/testbed.md). Each test's requirements come from PyPI."""
    cache = Path.home() / ".ansible/test/cache/get_pip_24_2.py"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text('import ensurepip, sys\nsys.exit(ensurepip._main(["--upgrade", "--default-pip"]))\n')
    env = user_env(user / "collections")
    env.setdefault("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    result = run(BIN / "ansible-test", "sanity", "--python", python, "--local", cwd=installed, env=env, timeout=1200)
    assert "ERROR" not in result.stdout, result.stdout[-4000:]
