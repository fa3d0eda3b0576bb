"""The app role's bin/releases: what prune keeps, on a release tree made up for the test."""

from __future__ import annotations

import http.server
import json
import socketserver
import subprocess
import sys
import threading
import time
import xmlrpc.client
import xmlrpc.server
from pathlib import Path

import pytest

RELEASES = Path(__file__).resolve().parent.parent / "roles/app/files/releases.py"


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


def prune(root: Path, keep: int, *programs: Path) -> list[str]:
    out = subprocess.run([sys.executable, str(RELEASES), "prune", str(root), str(keep), *map(str, programs)],
                         check=True, capture_output=True, text=True)
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


def test_prune_removes_what_no_program_names_and_releases_never_served(root: Path):
    # The serving release is the newest switched one; a newer one was prepared by a run
    # interrupted before its switch (switched_at null), another by a version of the role
    # before switched_at (kept: it may have served).
    for rid, extra in (("20260109T000000Z-abc9", {"switched_at": None}), ("20260110T000000Z-abca", {})):
        release = root / "releases" / rid
        release.mkdir()
        (release / "RELEASE.json").write_text(json.dumps({"id": rid, "status": "prepared", "venv": str(root / "venvs/v3"), **extra}))
    (root / "config").mkdir()
    for name in ("old.env", "idle.env"):
        (root / "shared/env" / name).write_text("SECRET=old\n")
    for name in ("gunicorn-old.conf.py", "gunicorn-now.conf.py"):
        (root / "config" / name).write_text("workers = 2\n")
    (root / "gunicorn.conf.py").write_text("workers = 2\n")
    (root / "venvs/v9").mkdir()  # a build that failed: no release names it
    program = root / "app-blue.conf"
    program.write_text(f"command=with-env {root}/shared/env/serving.env gunicorn --config {root}/config/gunicorn-now.conf.py\n")
    other = root / "app-green.conf"  # a stray slot's program, still defined: what it names stays
    other.write_text(f"command=with-env {root}/shared/env/idle.env gunicorn\n")
    removed = prune(root, 2, program, other, root / "app-none.conf")
    assert not (root / "releases/20260109T000000Z-abc9").exists()
    assert (root / "releases/20260110T000000Z-abca").exists()
    assert sorted(p.name for p in (root / "shared/env").iterdir()) == ["idle.env", "serving.env"]
    assert sorted(p.name for p in (root / "config").iterdir()) == ["gunicorn-now.conf.py"]
    assert not (root / "gunicorn.conf.py").exists()
    assert not (root / "venvs/v9").exists()
    assert str(root / "shared/env/old.env") in removed


def test_switch_marks_the_release_served(root: Path):
    release = root / "releases/20260105T000000Z-abc5"
    manifest = json.loads((release / "RELEASE.json").read_text())
    (release / "RELEASE.json").write_text(json.dumps({**manifest, "switched_at": None}))
    env = str(root / "shared/env/serving.env")
    out = releases_cmd("switch", str(root), "/run/app/green.sock", str(release), env, json.dumps({"slot": "green"}))
    assert out.returncode == 0, out.stderr
    assert json.loads((release / "RELEASE.json").read_text())["switched_at"]


def test_list_reports_a_release_without_manifest_as_incomplete(root: Path):
    out = subprocess.run([sys.executable, str(RELEASES), "list", str(root)], check=True, capture_output=True, text=True)
    statuses = {m["id"]: m["status"] for m in json.loads(out.stdout)}
    assert statuses["20260104T000000Z-abc4"] == "incomplete"
    assert list(statuses)[0] == "20260108T000000Z-abc8"  # newest first


# ------------------------------------------------------------------ switch, health, stop

def releases_cmd(*args: str, env: dict | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RELEASES), *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_switch_moves_the_links_and_records_the_state(root: Path):
    sock = "/run/app/green.sock"
    release = str(root / "releases/20260105T000000Z-abc5")
    env = str(root / "shared/env/serving.env")
    state = json.dumps({"slot": "green", "release": "20260105T000000Z-abc5", "sha": "abc5"})
    first = releases_cmd("switch", str(root), sock, release, env, state)
    assert first.returncode == 0, first.stderr
    assert (root / "serving.sock").is_symlink() and str((root / "serving.sock").readlink()) == sock
    assert str((root / "current").readlink()) == release
    assert json.loads((root / "state.json").read_text()) == json.loads(state)
    assert sorted(json.loads(first.stdout)["changed"]) == sorted(
        str(root / p) for p in ("serving.sock", "current", "state.json"))  # .env already pointed there
    # Nothing left beside the links, and the same switch again changes nothing.
    assert not list(root.glob("*.new")) and not list((root / "shared").glob("*.new"))
    again = releases_cmd("switch", str(root), sock, release, env, state)
    assert json.loads(again.stdout)["changed"] == []


class FakeSupervisor:
    """supervisord's XML-RPC interface as bin/releases uses it, on a unix socket: the state
    the test sets, a new pid at each question when `pids_change`, every call logged (the
    helper's own logic is what is tested here)."""

    def __init__(self, path: Path) -> None:
        self.state, self.pids_change, self.on_add = "", False, None
        self.calls: list[str] = []
        self.asked = 0

        class Handler(xmlrpc.server.SimpleXMLRPCRequestHandler):
            disable_nagle_algorithm = False  # a unix socket has no TCP options

        class Server(socketserver.UnixStreamServer, xmlrpc.server.SimpleXMLRPCDispatcher):
            logRequests = False

            def __init__(self) -> None:
                socketserver.UnixStreamServer.__init__(self, str(path), Handler)
                xmlrpc.server.SimpleXMLRPCDispatcher.__init__(self, allow_none=True)

            def get_request(self):
                request, _ = super().get_request()
                return request, ("local", 0)

        self.server = Server()
        self.added = ["app-blue"]
        for name in ("getProcessInfo", "getAllProcessInfo", "reloadConfig", "addProcessGroup", "stopProcessGroup",
                     "removeProcessGroup"):
            self.server.register_function(getattr(self, name), f"supervisor.{name}")
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def known(self, name: str) -> None:
        if not self.state:
            raise xmlrpc.client.Fault(10, f"BAD_NAME: {name}")

    def getProcessInfo(self, name):  # noqa: N802
        self.calls.append(f"status {name}")
        self.known(name)
        self.asked += 1
        return {"name": name, "statename": self.state, "pid": self.asked if self.pids_change else 1}

    def getAllProcessInfo(self):  # noqa: N802
        """Two processes of each program added (numprocs=2)."""
        self.asked += 1
        return [{"group": group, "name": f"{group}-{n:02d}", "statename": self.state,
                 "pid": self.asked * 10 + n if self.pids_change else n + 1}
                for group in self.added for n in range(2) if self.state]

    def reloadConfig(self):  # noqa: N802
        self.calls.append("reread")
        return [[self.added, [], []]]

    def addProcessGroup(self, name):  # noqa: N802
        self.calls.append(f"add {name}")
        if self.on_add:
            self.on_add()
        return True

    def stopProcessGroup(self, name):  # noqa: N802
        self.calls.append(f"stop {name}")
        self.known(name)
        return []

    def removeProcessGroup(self, name):  # noqa: N802
        self.calls.append(f"remove {name}")
        self.known(name)
        self.state = ""
        return True


@pytest.fixture
def supervisor(tmp_path: Path) -> tuple[dict, FakeSupervisor]:
    fake = FakeSupervisor(tmp_path / "supervisor.sock")
    yield {"SUPERVISOR_SOCKET": str(tmp_path / "supervisor.sock"), "PATH": "/usr/bin:/bin"}, fake
    fake.server.shutdown()
    fake.server.server_close()


def serve_once(path: Path, status: int) -> threading.Thread:
    """An HTTP server on a unix socket that answers every GET with STATUS."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    class UnixServer(socketserver.UnixStreamServer):
        def get_request(self):
            request, _ = super().get_request()
            return request, ("local", 0)

    server = UnixServer(str(path), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


def start(env: dict, sock: Path, timeout: int, log: Path | None = None) -> subprocess.CompletedProcess:
    log = log or sock.with_name("app-blue.log")
    return releases_cmd("start", "app-blue", str(sock), "/health", "200", str(timeout), str(log), env=env)


def test_start_adds_the_program_and_passes_when_the_socket_answers_the_status(supervisor, tmp_path):
    env, fake = supervisor
    fake.state = "RUNNING"
    serve_once(tmp_path / "app.sock", 200)
    result = start(env, tmp_path / "app.sock", 10)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == 200
    assert fake.calls[:2] == ["reread", "add app-blue"]


def test_start_fails_after_the_timeout_with_the_last_answer(supervisor, tmp_path):
    env, fake = supervisor
    fake.state = "RUNNING"
    serve_once(tmp_path / "app.sock", 503)
    started = time.monotonic()
    result = start(env, tmp_path / "app.sock", 2)
    assert result.returncode != 0
    assert 2 <= time.monotonic() - started < 10
    assert "/health did not answer 200 within 2 s" in result.stderr and "last: HTTP 503" in result.stderr


@pytest.mark.parametrize("state, pids_change, says", [
    ("BACKOFF", False, "app-blue is BACKOFF in Supervisor"),
    # RUNNING each time it is asked, with a new pid: it crashed and was restarted.
    ("RUNNING", True, "app-blue was restarted by Supervisor"),
], ids=["backoff", "restarted"])
def test_start_gives_up_at_once_on_a_program_that_does_not_stay_up(supervisor, tmp_path, state, pids_change, says):
    env, fake = supervisor
    fake.state, fake.pids_change = state, pids_change
    started = time.monotonic()
    # Nothing listens on the socket: without the Supervisor check this would wait 60 s.
    result = start(env, tmp_path / "nothing.sock", 60)
    assert result.returncode != 0
    assert time.monotonic() - started < 10
    assert says in result.stderr


def test_start_fails_naming_the_program_supervisor_did_not_add(supervisor, tmp_path):
    env, fake = supervisor  # state "": Supervisor does not know the program
    result = start(env, tmp_path / "nothing.sock", 60)
    assert result.returncode != 0
    assert "Supervisor did not add app-blue" in result.stderr


def test_start_fails_clearly_without_supervisord(tmp_path):
    env = {"SUPERVISOR_SOCKET": str(tmp_path / "none.sock"), "PATH": "/usr/bin:/bin"}
    result = start(env, tmp_path / "nothing.sock", 60)
    assert result.returncode != 0
    assert "Supervisor could not add app-blue" in result.stderr


def test_a_failed_start_shows_what_the_program_wrote_during_it(supervisor, tmp_path):
    env, fake = supervisor
    fake.state = "BACKOFF"
    log = tmp_path / "app-blue.log"
    log.write_text("an earlier run's line\n")
    # The stand-in Supervisor "starts" the program: adding it appends its output to the log.
    fake.on_add = lambda: log.open("a").write("Traceback\nRuntimeError: boom\n")
    result = start(env, tmp_path / "nothing.sock", 60, log)
    assert result.returncode != 0
    assert "RuntimeError: boom" in result.stderr
    assert "an earlier run's line" not in result.stderr


def test_a_long_output_keeps_its_beginning_and_its_end(supervisor, tmp_path):
    env, fake = supervisor
    fake.state = "BACKOFF"
    log = tmp_path / "app-blue.log"
    fake.on_add = lambda: log.open("a").write("".join(f"{i}\n" for i in range(1, 501)))
    lines = start(env, tmp_path / "nothing.sock", 60, log).stderr.splitlines()
    assert lines[2:4] == ["1", "2"] and lines[-1] == "500"
    assert "[... 440 lines ...]" in lines


def test_stop_stops_removes_and_deletes_the_program_file(supervisor, tmp_path):
    env, fake = supervisor
    fake.state = "RUNNING"
    conf = tmp_path / "app-blue.conf"
    conf.write_text("[program:app-blue]\n")
    result = releases_cmd("stop", "0", str(conf), env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"stopped": True}
    assert not conf.exists()
    assert fake.calls.index("stop app-blue") < fake.calls.index("remove app-blue")
    # An empty slot: nothing to stop, reported unchanged.
    again = releases_cmd("stop", "0", str(conf), env=env)
    assert json.loads(again.stdout) == {"stopped": False}


PROCESSES = """[program:app-blue.worker]
numprocs=2
stdout_logfile=LOGS/%(program_name)s-%(process_num)02d.log

[program:app-blue.mailer]
stdout_logfile=LOGS/%(program_name)s-%(process_num)02d.log
"""


def test_stop_stops_every_program_of_every_file(supervisor, tmp_path):
    env, fake = supervisor
    fake.state = "RUNNING"
    web, processes = tmp_path / "app-blue.conf", tmp_path / "app-blue.processes.conf"
    web.write_text("[program:app-blue]\n")
    processes.write_text(PROCESSES.replace("LOGS", str(tmp_path)))
    result = releases_cmd("stop", "0", str(web), str(processes), env=env)
    assert result.returncode == 0, result.stderr
    for program in ("app-blue", "app-blue.worker", "app-blue.mailer"):
        assert fake.calls.index(f"stop {program}") < fake.calls.index(f"remove {program}")
    assert not web.exists() and not processes.exists()


def test_up_adds_every_program_and_passes_once_all_their_processes_run(supervisor, tmp_path):
    env, fake = supervisor
    fake.state, fake.added = "RUNNING", ["app-blue.worker", "app-blue.mailer"]
    conf = tmp_path / "app-blue.processes.conf"
    conf.write_text(PROCESSES.replace("LOGS", str(tmp_path)))
    result = releases_cmd("up", str(conf), "10", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["programs"] == ["app-blue.worker", "app-blue.mailer"]
    assert "add app-blue.worker" in fake.calls and "add app-blue.mailer" in fake.calls


@pytest.mark.parametrize("state, pids_change, says", [
    ("BACKOFF", False, "app-blue.worker:app-blue.worker-00 is BACKOFF in Supervisor"),
    # Still starting each time it is asked, with a new pid: it crashed and was restarted.
    ("STARTING", True, "app-blue.worker:app-blue.worker-00 was restarted by Supervisor"),
], ids=["backoff", "restarted"])
def test_up_names_the_process_that_does_not_stay_up_and_what_it_wrote(supervisor, tmp_path, state, pids_change, says):
    env, fake = supervisor
    fake.state, fake.pids_change, fake.added = state, pids_change, ["app-blue.worker"]
    conf = tmp_path / "app-blue.processes.conf"
    conf.write_text(PROCESSES.replace("LOGS", str(tmp_path)).split("\n\n")[0])
    log = tmp_path / "app-blue.worker-01.log"
    log.write_text("an earlier run's line\n")
    fake.on_add = lambda: log.open("a").write("Traceback\nRuntimeError: worker boom\n")
    started = time.monotonic()
    result = releases_cmd("up", str(conf), "60", env=env)
    assert result.returncode != 0
    assert time.monotonic() - started < 10
    assert result.stderr.startswith("process worker: ")
    assert says in result.stderr
    assert "RuntimeError: worker boom" in result.stderr and "an earlier run's line" not in result.stderr
