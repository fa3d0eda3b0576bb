import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.db import make_engine


@contextmanager
def database(client: TestClient, url: str) -> Iterator[None]:
    """Point the running app at another database for the duration of the block."""
    app = client.app
    assert isinstance(app, FastAPI) and client.portal is not None
    original, engine = app.state.engine, make_engine(url)
    app.state.engine = engine
    try:
        yield
    finally:
        app.state.engine = original
        client.portal.call(engine.dispose)


def test_health_ok(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_RELEASE", "r42")
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "release": "r42",
        "python": platform.python_version(),
        "environment": "test",
        "database_revision": "0002_item_description",
    }


def test_health_unmigrated_database(client: TestClient, tmp_path: Path) -> None:
    with database(client, f"sqlite+aiosqlite:///{tmp_path}/empty.db"):
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["database_revision"] is None


def test_health_reports_database_failure(client: TestClient, tmp_path: Path) -> None:
    with database(client, f"sqlite+aiosqlite:///{tmp_path}/no-such-dir/app.db"):
        response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "error"
    assert "no-such-dir" not in response.text


def test_client_reports_the_address_the_app_sees(client: TestClient) -> None:
    response = client.get("/client")
    assert response.status_code == 200
    assert response.json() == {"address": "testclient"}
