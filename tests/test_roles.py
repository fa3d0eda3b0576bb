"""Every role documents and validates the variables it reads, in one place."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ROLES = sorted(p.parent.parent for p in ROOT.glob("roles/*/meta/argument_specs.yml"))


def test_every_role_has_an_argument_spec():
    assert {p.name for p in ROLES} == {p.name for p in ROOT.glob("roles/*") if p.is_dir()}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_spec_and_defaults_name_the_same_variables(role):
    spec = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text()) or {}
    options = spec["main"]["options"]
    required = {name for name, o in options.items() if o.get("required")}
    assert set(options) - required == set(defaults)
    for name in options:
        assert name.startswith(f"{role.name}_"), f"{name} lacks the role prefix"
    # Every other entry point validates the same variables, but the preflight: it checks
    # them itself, strictly (fastapi_deploy.stack.check_inputs reads main's options).
    for entry, body in spec.items():
        assert body["options"] == ({} if entry == "preflight" else options), f"entry point {entry} drifted from main"


def test_role_readmes_follow_the_specs():
    result = subprocess.run([sys.executable, str(ROOT / "scripts/role-docs"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_internal_variables_are_marked(role):
    internal = role / "vars/main.yml"
    if internal.exists():
        names = yaml.safe_load(internal.read_text()) or {}
        assert all(n.startswith(f"__{role.name}_") for n in names), sorted(names)
