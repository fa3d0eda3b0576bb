"""The execution environment AWX runs the project in: ansible-builder writes its build
context offline, and that context pins what a checkout pins (requirements.txt for
ansible-core, ansible-runner and Jinja2; requirements.yml for the collections).

Building the image itself needs a registry and the internet, which this test bed does not
have; the molecule/debian12 scenario runs deploy.yml under ansible-runner, AWX's engine."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def pins() -> dict[str, str]:
    """requirements.txt's NAME==VERSION lines."""
    found = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)(\[[^]]*\])?==(\S+)", line)
        if m:
            found[m.group(1).lower()] = m.group(3)
    return found


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ee") / "context"
    result = subprocess.run(
        [str(BIN / "ansible-builder"), "create", "--file", str(ROOT / "execution-environment.yml"),
         "--context", str(out), "--output-filename", "Containerfile"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_the_context_installs_the_pinned_ansible_core_and_runner(context):
    containerfile = (context / "Containerfile").read_text()
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"', containerfile, re.M)
    assert refs, containerfile[:2000]
    p = pins()
    assert sorted(refs.group(1).split()) == sorted(
        [f"ansible-core=={p['ansible-core']}", f"ansible-runner=={p['ansible-runner']}"])
    assert "ansible-galaxy collection install" in containerfile
    assert 'LABEL ansible-execution-environment=true' in containerfile


def test_the_context_installs_the_collections_of_requirements_yml(context):
    built = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    checkout = yaml.safe_load((ROOT / "requirements.yml").read_text())
    assert built == checkout
    names = {c["name"] for c in built["collections"]}
    # What the roles and ansible.cfg use beyond ansible.builtin.
    assert {"community.postgresql", "ansible.posix"} <= names


def test_the_contexts_python_packages_are_requirements_txts_pins(context):
    python = (context / "_build" / "requirements.txt").read_text().split()
    p = pins()
    assert python, "no Python packages in the context"
    for requirement in python:
        name, _, version = requirement.partition("==")
        assert version and p.get(name.lower()) == version, f"{requirement}: requirements.txt pins {p.get(name.lower())}"
    assert "openssh-clients" in (context / "_build" / "bindep.txt").read_text()
