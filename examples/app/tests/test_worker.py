"""The worker's queue and the scheduled job, on a migrated SQLite database."""

import asyncio

from fastapi.testclient import TestClient

from app import jobs, worker
from app.config import get_settings
from app.db import make_engine


def run_worker_once() -> bool:
    async def once() -> bool:
        engine = make_engine(get_settings().database_url)
        try:
            return await worker.work_one(engine)
        finally:
            await engine.dispose()

    return asyncio.run(once())


def test_the_worker_does_each_waiting_job_once_and_says_which_release(client: TestClient, monkeypatch) -> None:
    monkeypatch.setattr(worker, "RELEASE", "20260101T000000")
    first = client.post("/items", json={"name": "job:0"}).json()
    second = client.post("/items", json={"name": "job:0"}).json()
    plain = client.post("/items", json={"name": "not a job"}).json()

    assert run_worker_once() and run_worker_once()
    assert not run_worker_once()
    for item in (first, second):
        assert client.get(f"/items/{item['id']}").json()["description"] == "done by 20260101T000000"
    assert client.get(f"/items/{plain['id']}").json()["description"] is None


def test_the_stamp_job_writes_a_row_naming_its_release(client: TestClient, monkeypatch) -> None:
    monkeypatch.setenv("APP_RELEASE", "20260202T000000")
    asyncio.run(jobs.stamp())
    stamps = [item for item in client.get("/items", params={"limit": 1000}).json() if item["name"] == "stamp"]
    assert stamps[-1]["description"] == "stamped by 20260202T000000"
