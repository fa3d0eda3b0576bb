"""The app role's bin/releases: what prune keeps, on a release tree made up for the test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

RELEASES = Path(__file__).resolve().parent.parent / "roles/app/files/releases"


def make_release(root: Path, rid: str, status: str | None, venv: str) -> None:
    release = root / "releases" / rid
    release.mkdir(parents=True)
    if status:
        (release / "RELEASE.json").write_text(json.dumps({"id": rid, "status": status, "venv": str(root / "venvs" / venv)}))
    (root / "venvs" / venv).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "shared/env").mkdir(parents=True)
    # Oldest first: the serving release is an old one (after a rollback).
    for i, (status, venv) in enumerate(
        [("prepared", "v1"), ("prepared", "v1"), ("failed", "v2"), ("prepared", "v3"), (None, "v4"),
         ("prepared", "v3"), ("failed", "v5"), ("prepared", "v3"), ("failed", "v6")]
    ):
        make_release(tmp_path, f"2026010{i}T000000Z-abc{i}", status, venv)
    (tmp_path / "current").symlink_to(tmp_path / "releases/20260100T000000Z-abc0")
    env = tmp_path / "shared/env/serving.env"
    env.write_text("A=1\n")
    (tmp_path / "shared/.env").symlink_to(env)
    return tmp_path


def prune(root: Path, keep: int) -> list[str]:
    out = subprocess.run([sys.executable, str(RELEASES), "prune", str(root), str(keep)], check=True, capture_output=True, text=True)
    return out.stdout.splitlines()


def test_prune_keeps_the_serving_release_and_the_newest_of_each_kind(root: Path):
    removed = prune(root, 2)
    kept = sorted(p.name for p in (root / "releases").iterdir())
    assert kept == [
        "20260100T000000Z-abc0",  # serving, though the oldest
        "20260105T000000Z-abc5",  # newest two prepared
        "20260106T000000Z-abc6",  # newest two failed (or incomplete)
        "20260107T000000Z-abc7",
        "20260108T000000Z-abc8",
    ]
    assert len(removed) == 4 + 4  # 4 releases, then the venvs of no kept good release (v2, v4, v5, v6)
    assert sorted(p.name for p in (root / "venvs").iterdir()) == ["v1", "v3"]
    assert (root / "shared/env/serving.env").exists()


def test_list_reports_a_release_without_manifest_as_incomplete(root: Path):
    out = subprocess.run([sys.executable, str(RELEASES), "list", str(root)], check=True, capture_output=True, text=True)
    statuses = {m["id"]: m["status"] for m in json.loads(out.stdout)}
    assert statuses["20260104T000000Z-abc4"] == "incomplete"
    assert list(statuses)[0] == "20260108T000000Z-abc8"  # newest first
