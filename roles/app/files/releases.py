"""The releases of an app on this host, and the switch between its slots.

    releases list APP_ROOT          print the release manifests (RELEASE.json) as JSON, newest first
    releases prune APP_ROOT KEEP PROGRAM_FILE...
                                    remove old releases, unused venvs, environment files and
                                    Gunicorn settings no PROGRAM_FILE nor state.json names
    releases start PROGRAM SOCKET PATH STATUS TIMEOUT LOG
                                    add the Supervisor PROGRAM (its file is written: it starts),
                                    then wait until GET PATH on the unix SOCKET answers STATUS;
                                    on failure, print what the program wrote to LOG meanwhile
    releases switch APP_ROOT SOCKET RELEASE_DIR ENV_FILE STATE
                                    point serving.sock, current and shared/.env at a slot and a
                                    release, then record STATE (JSON) in state.json
    releases up CONF TIMEOUT        add every Supervisor program CONF names (they start), then
                                    wait until each of their processes is RUNNING (it stayed up
                                    its startsecs); on failure, name the program and print what
                                    its processes wrote meanwhile
    releases stop DELAY CONF...     after DELAY seconds, stop every Supervisor program the CONF
                                    files name, all at once, each gracefully (its stopsignal, then
                                    up to its stopwaitsecs), remove them and delete the files

prune keeps the serving release (current) always, the newest KEEP prepared releases (the
rollback candidates) and the newest KEEP failed ones (for inspection), every venv named
in a kept prepared release's manifest, and whatever a slot's program or state.json names.
A release prepared but never switched to (switched_at null in its manifest; switch sets
it), newer than the serving one, is an interrupted run's: it is removed. It prints each path it removes.

start and up give up at once when Supervisor reports a process as FATAL, BACKOFF (it exited
within its startsecs), EXITED or STOPPED: a release that cannot start is not waited for.

start and stop talk to supervisord over its unix socket (XML-RPC, as supervisorctl does;
the socket is [supervisorctl] serverurl of /etc/supervisor/supervisord.conf, or
$SUPERVISOR_SOCKET): one process, instead of a supervisorctl started for every question.

switch makes each link beside its destination and renames it over it (rename is atomic):
nginx follows serving.sock on every new connection, so from then on requests reach the
new slot without an nginx reload.
"""

from __future__ import annotations

import concurrent.futures
import configparser
import glob
import http.client
import json
import os
import shutil
import socket
import sys
import time
import xmlrpc.client
from pathlib import Path


def releases(root: Path) -> list[Path]:
    return sorted((p for p in (root / "releases").iterdir() if p.is_dir()), reverse=True)


def manifest(release: Path) -> dict:
    """A release's RELEASE.json; one without a readable manifest never finished preparing."""
    try:
        return json.loads((release / "RELEASE.json").read_text())
    except (OSError, ValueError):
        return {"id": release.name, "status": "incomplete"}


def list_releases(root: Path) -> None:
    print(json.dumps([manifest(r) for r in releases(root)]))


def prune(root: Path, keep: int, programs: list[str]) -> None:
    current = (root / "current").resolve()
    try:
        state = json.loads((root / "state.json").read_text())
    except (OSError, ValueError):
        state = {}
    # What a slot's program names (the serving one, and any other still defined) and what
    # state.json records are in use, whatever their age.
    named = "\n".join(Path(p).read_text() for p in programs if os.path.exists(p))
    in_use = {str(current), str((root / "shared/.env").resolve()), state.get("env_file", ""), state.get("gunicorn_conf", "")}

    def used(path: Path) -> bool:
        return str(path) in in_use or str(path) in named

    all_releases = releases(root)
    manifests = {r: manifest(r) for r in all_releases}
    # Prepared by a run that was interrupted before its switch, and never served (a
    # manifest written before switched_at existed does not say: it is kept).
    never_served = {r for r in all_releases if manifests[r]["status"] == "prepared"
                    and "switched_at" in manifests[r] and not manifests[r]["switched_at"] and r.name > current.name}
    prepared = [r for r in all_releases if manifests[r]["status"] == "prepared" and r not in never_served]
    failed = [r for r in all_releases if manifests[r]["status"] != "prepared"]
    kept = set(prepared[:keep]) | set(failed[:keep]) | {current}
    for release in all_releases:
        if release not in kept and not used(release):
            shutil.rmtree(release)
            print(release)

    # Venvs of kept releases; a venv whose build failed (no .complete) goes with the rest.
    used_venvs = {Path(manifests[r]["venv"]) for r in kept if manifests.get(r, {}).get("venv") and r not in failed}
    for venv in (root / "venvs").iterdir():
        if used_venvs and venv not in used_venvs and not used(venv):
            shutil.rmtree(venv)
            print(venv)

    # Environment files (old secret values) and Gunicorn settings nothing uses any more: a
    # rollback runs with the serving environment and settings.
    for old in [*(root / "shared/env").glob("*.env"), *(root / "config").glob("*.conf.py"), root / "gunicorn.conf.py"]:
        if old.exists() and not used(old):
            old.unlink()
            print(old)


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


SUPERVISOR_CONF = "/etc/supervisor/supervisord.conf"


def supervisor_socket() -> str:
    if os.environ.get("SUPERVISOR_SOCKET"):
        return os.environ["SUPERVISOR_SOCKET"]
    conf = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"))
    conf.read(SUPERVISOR_CONF)
    url = conf.get("supervisorctl", "serverurl", fallback="unix:///run/supervisor.sock")
    if not url.startswith("unix://"):
        sys.exit(f"{SUPERVISOR_CONF}: serverurl {url} is not a unix socket")
    return url[len("unix://"):]


class UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__()
        self.path, self.timeout = path, timeout

    def make_connection(self, host):
        return UnixConnection(self.path, timeout=self.timeout)


def supervisor(timeout: float | None = 10.0):
    """supervisord's XML-RPC interface (supervisor.*). timeout=None for calls that wait for
    a program to stop."""
    return xmlrpc.client.ServerProxy("http://localhost/RPC2", transport=UnixTransport(supervisor_socket(), timeout))


BAD_NAME = 10  # supervisor.xmlrpc.Faults.BAD_NAME: no such process or group
NOT_RUNNING = 70  # Faults.NOT_RUNNING: nothing to stop
STILL_RUNNING = 91  # Faults.STILL_RUNNING: a group cannot be removed while it stops


def supervisor_status(program: str) -> tuple[str, str]:
    """(state, pid) as Supervisor reports them: RUNNING, STARTING, BACKOFF, FATAL, ...;
    ABSENT for a program Supervisor does not know."""
    try:
        info = supervisor().supervisor.getProcessInfo(f"{program}:{program}")
    except xmlrpc.client.Fault as fault:
        if fault.faultCode == BAD_NAME:
            return "ABSENT", ""
        raise
    return info["statename"], str(info["pid"] or "")


def supervisor_update(program: str) -> str:
    """What `supervisorctl update PROGRAM` does: reread the configuration, then add the
    program (it starts), or replace it when its file changed, or remove it when gone."""
    rpc = supervisor()
    added, changed, removed = rpc.supervisor.reloadConfig()[0]
    if program in removed or program in changed:
        supervisor(timeout=None).supervisor.stopProcessGroup(program)
        rpc.supervisor.removeProcessGroup(program)
    if program in added or program in changed:
        rpc.supervisor.addProcessGroup(program)
        return "added"
    return "removed" if program in removed else "unchanged"


def supervisor_state(program: str) -> str:
    return supervisor_status(program)[0]


def output_since(log: str, offset: int, head: int = 40, tail: int = 20) -> str:
    """What the program wrote to its log from offset on: all of it, or its first and last lines."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError as exc:
        return f"(cannot read {log}: {exc})"
    if len(lines) > head + tail:
        lines = lines[:head] + [f"[... {len(lines) - head - tail} lines ...]"] + lines[-tail:]
    return "\n".join(lines) or "(nothing)"


def start(program: str, sock: str, path: str, status: int, timeout: float, log: str) -> None:
    try:
        offset = os.path.getsize(log)
    except OSError:
        offset = 0

    def fail(reason: str) -> None:
        sys.exit(f"{reason}\nWhat {program} wrote to {log} meanwhile:\n{output_since(log, offset)}")

    try:
        update = supervisor_update(program)
    except (OSError, xmlrpc.client.Error) as exc:
        fail(f"Supervisor could not add {program}: {exc}")
    if supervisor_state(program) == "ABSENT":
        fail(f"Supervisor did not add {program} ({update}): is its program file in /etc/supervisor/conf.d?")
    started = time.monotonic()
    deadline = started + timeout
    last, checked, first_pid = "no answer", 0.0, ""
    while True:
        try:
            conn = UnixConnection(sock, timeout=min(5.0, max(deadline - time.monotonic(), 0.5)))
            conn.request("GET", path, headers={"Host": "localhost"})
            answer = conn.getresponse()
            answer.read()
            conn.close()
            if answer.status == status:
                print(json.dumps({"status": answer.status, "seconds": round(time.monotonic() - started, 2)}))
                return
            last = f"HTTP {answer.status}"
        except (OSError, http.client.HTTPException) as exc:
            last = f"no answer ({exc.__class__.__name__}: {exc})"
        now = time.monotonic()
        if now - checked >= 0.5:
            checked = now
            state, pid = supervisor_status(program)
            if state in ("FATAL", "BACKOFF", "EXITED", "STOPPED"):
                fail(f"{program} is {state} in Supervisor (it does not stay up) after {now - started:.1f} s; last: {last}")
            first_pid = first_pid or pid
            if pid and pid != first_pid:
                fail(f"{program} was restarted by Supervisor (pid {first_pid}, then {pid}): it does not stay up; last: {last}")
        if now >= deadline:
            fail(f"{path} did not answer {status} within {timeout:g} s on {sock}; last: {last}")
        time.sleep(0.2)


def replace_link(target: str, link: Path) -> bool:
    if link.is_symlink() and os.readlink(link) == target:
        return False
    new = link.with_name(link.name + ".new")
    new.unlink(missing_ok=True)
    new.symlink_to(target)
    new.rename(link)
    return True


def mark_switched(release_dir: str) -> None:
    """Note in the release's manifest that it served (prune keeps it, see above)."""
    path = Path(release_dir) / "RELEASE.json"
    data = manifest(Path(release_dir))
    if data.get("status") == "prepared" and not data.get("switched_at"):
        data["switched_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        new = path.with_name("RELEASE.json.new")
        new.write_text(json.dumps(data, indent=4) + "\n")
        new.chmod(0o644)
        new.rename(path)


def switch(root: Path, sock: str, release_dir: str, env_file: str, state: str) -> None:
    mark_switched(release_dir)
    changed = [str(link) for target, link in ((sock, root / "serving.sock"), (release_dir, root / "current"),
                                              (env_file, root / "shared/.env")) if replace_link(target, link)]
    record = root / "state.json"
    text = json.dumps(json.loads(state), indent=4, sort_keys=True) + "\n"
    if not record.exists() or record.read_text() != text:
        new = record.with_name("state.json.new")
        new.write_text(text)
        new.chmod(0o644)
        new.rename(record)
        changed.append(str(record))
    print(json.dumps({"changed": changed}))


def programs_of(conf: str) -> dict[str, str]:
    """The programs a Supervisor file names, each with its log file (a glob for numprocs)."""
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    parser.read(conf)
    return {section.partition(":")[2]: parser.get(section, "stdout_logfile", fallback="").replace("%(process_num)02d", "*")
            .replace("%(program_name)s", section.partition(":")[2])
            for section in parser.sections() if section.startswith("program:")}


def group_processes(rpc, group: str) -> list[dict]:
    return [info for info in rpc.supervisor.getAllProcessInfo() if info["group"] == group]


def up(conf: str, timeout: float) -> None:
    """Add the programs of CONF; wait until every process of each is RUNNING."""
    programs = programs_of(conf)
    logs = {name: sorted(glob.glob(pattern)) for name, pattern in programs.items()}
    offsets = {log: os.path.getsize(log) for found in logs.values() for log in found}

    def fail(program: str, reason: str) -> None:
        wrote = "\n".join(f"{log}:\n{output_since(log, offsets.get(log, 0))}"
                          for log in sorted(glob.glob(programs[program])))
        sys.exit(f"process {program.rpartition('.')[2]}: {reason}\nWhat {program} wrote meanwhile:\n{wrote or '(nothing)'}")

    for program in programs:
        try:
            supervisor_update(program)
        except (OSError, xmlrpc.client.Error) as exc:
            fail(program, f"Supervisor could not add {program}: {exc}")
    started = time.monotonic()
    rpc, first_pids = supervisor(), {}
    while True:
        now = time.monotonic()
        waiting = []
        for program in programs:
            processes = group_processes(rpc, program)
            if not processes:
                fail(program, f"Supervisor did not add {program}: is {conf} in /etc/supervisor/conf.d?")
            for info in processes:
                name = f"{program}:{info['name']}"
                if info["statename"] in ("FATAL", "BACKOFF", "EXITED", "STOPPED"):
                    fail(program, f"{name} is {info['statename']} in Supervisor (it does not stay up) "
                                  f"after {now - started:.1f} s")
                if info["pid"]:
                    first = first_pids.setdefault(name, info["pid"])
                    if info["pid"] != first:
                        fail(program, f"{name} was restarted by Supervisor (pid {first}, then {info['pid']}): "
                                      "it does not stay up")
                if info["statename"] != "RUNNING":
                    waiting.append(name)
        if not waiting:
            print(json.dumps({"programs": list(programs), "seconds": round(now - started, 2)}))
            return
        if now - started >= timeout:
            fail(waiting[0].partition(":")[0], f"{', '.join(waiting)} not RUNNING within {timeout:g} s")
        time.sleep(0.5)


def stop_program(program: str) -> None:
    """Stop (Supervisor waits for a graceful stop, up to stopwaitsecs), then remove."""
    try:
        # Stopping waits for the program to exit (stopwaitsecs): no timeout of ours.
        supervisor(timeout=None).supervisor.stopProcessGroup(program)
    except xmlrpc.client.Fault as fault:
        if fault.faultCode not in (BAD_NAME, NOT_RUNNING):
            sys.exit(f"Supervisor's stopProcessGroup({program}) failed: {fault.faultString}")
    # Another stop of the same program may be under way (that of a run interrupted during
    # its drain): the group is removed once that one has ended.
    deadline = time.monotonic() + 120
    while True:
        try:
            supervisor().supervisor.removeProcessGroup(program)
            break
        except xmlrpc.client.Fault as fault:
            if fault.faultCode == BAD_NAME:
                break
            if fault.faultCode != STILL_RUNNING or time.monotonic() > deadline:
                sys.exit(f"Supervisor's removeProcessGroup({program}) failed: {fault.faultString}")
            time.sleep(0.5)


def stop(delay: float, confs: list[str]) -> None:
    """Stop and remove every program of the CONF files at once, then delete the files."""
    confs = [conf for conf in confs if os.path.exists(conf)]
    if not confs:
        print(json.dumps({"stopped": False}))
        return
    time.sleep(delay)
    programs = [program for conf in confs for program in programs_of(conf)]
    with concurrent.futures.ThreadPoolExecutor(max(len(programs), 1)) as pool:
        list(pool.map(stop_program, programs))
    for conf in confs:
        Path(conf).unlink(missing_ok=True)
    print(json.dumps({"stopped": True}))


def main() -> None:
    command, args = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 2 else ("", [])
    if command == "list":
        list_releases(Path(args[0]))
    elif command == "prune" and len(args) >= 2:
        prune(Path(args[0]), int(args[1]), args[2:])
    elif command == "start" and len(args) == 6:
        start(args[0], args[1], args[2], int(args[3]), float(args[4]), args[5])
    elif command == "switch" and len(args) == 5:
        switch(Path(args[0]), *args[1:])
    elif command == "up" and len(args) == 2:
        up(args[0], float(args[1]))
    elif command == "stop" and len(args) >= 2:
        stop(float(args[0]), args[1:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
