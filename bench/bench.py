"""Deploy benchmark: provisions its own containers (fd-bench-*), times the playbooks over SSH.

Run it through bench/run (which runs scripts/setup first). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "molecule"))
from load import Load  # noqa: E402  (the tests' bounded load generator)

CACHE = ROOT / ".cache"
WORK = CACHE / "bench"
PREFIX = "fd-bench-"
IMAGE = "localhost/fastapi-deploy/debian12:latest"
KEY = CACHE / "ssh" / "id_ed25519"
RESULTS = ROOT / "bench" / "results"
VENV_BIN = ROOT / ".venv" / "bin"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(*argv: str, check: bool = True, capture: bool = True, input: str | None = None) -> str:
    result = subprocess.run(argv, check=False, capture_output=capture, text=True, input=input)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr or ''}{result.stdout or ''}")
    return result.stdout if capture else ""


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.hosts = [f"{PREFIX}{i}" for i in range(1, args.hosts + 1)]
        self.run_dir = WORK / "run"
        self.logs = WORK / "logs"
        self.repo = WORK / "repo" / "app.git"
        self.checkout = WORK / "checkout"
        self.archives = WORK / "python-archives" if not args.quick else CACHE / "python-archives"
        self.venv_archives = WORK / "venv-archives"
        self.inventory = self.run_dir / "inventory.yml"
        self.mitogen = False
        self.commits = 0
        self.results: dict = {"timings": {}, "notes": []}
        self.loads: list[float] = []
        self.prefix = ""
        self.last_cpu = 0.0
        self.last_tasks = 0

    # ---------------------------------------------------------------- containers
    def cleanup(self) -> None:
        names = sh("podman", "ps", "-a", "--format", "{{.Names}}", check=False).split()
        mine = [n for n in names if n.startswith(PREFIX)]
        if mine:
            log(f"removing {' '.join(mine)}")
            sh("podman", "rm", "-f", "-t", "2", *mine, check=False)

    def start_containers(self) -> None:
        self.cleanup()
        for name in self.hosts:
            # NET_ADMIN: the hardening role's nftables firewall, as on a server.
            sh("podman", "run", "-d", "--name", name, "--hostname", name, "--systemd=always",
               "--cap-add", "NET_ADMIN",
               "-p", "127.0.0.1::22", "-p", "127.0.0.1::443",
               "-v", f"{CACHE / 'fixtures'}:/opt/fixtures:ro",
               "-v", f"{WORK / 'repo'}:/opt/bench:ro",
               IMAGE, "/sbin/init")
        pub = KEY.with_suffix(".pub").read_text()
        for name in self.hosts:
            for _ in range(60):
                state = sh("podman", "exec", name, "systemctl", "is-system-running", check=False).strip()
                if state in ("running", "degraded"):
                    break
                time.sleep(1)
            sh("podman", "exec", "-i", name, "sh", "-c",
               "install -d -m 0700 /root/.ssh && cat > /root/.ssh/authorized_keys && chmod 0600 /root/.ssh/authorized_keys"
               " && systemctl start ssh", input=pub)
            # The mounted repository belongs to this machine's root: git refuses it to the app's
            # build account ("dubious ownership") unless told it is safe (as the scenarios do).
            sh("podman", "exec", "-i", name, "sh", "-c", "cat > /etc/gitconfig",
               input="[safe]\n\tdirectory = /opt/bench/app.git\n")
        self.write_inventory()

    def port(self, name: str, port: int) -> int:
        return int(sh("podman", "port", name, f"{port}/tcp").splitlines()[0].rpartition(":")[2])

    def write_inventory(self) -> None:
        hosts = {
            name: {"ansible_host": "127.0.0.1", "ansible_port": self.port(name, 22)} for name in self.hosts
        }
        certs = sorted(str(p) for p in Path("/usr/local/share/ca-certificates").glob("*.crt"))
        inventory = {"all": {"children": {"web": {"hosts": hosts, "vars": {
            "ansible_connection": "ssh",
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(KEY),
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            "base_extra_ca_certificates": certs,
            "app_pip_cert": "/etc/ssl/certs/ca-certificates.crt",
            "python_pyenv_repo": "file:///opt/fixtures/pyenv.git",
            "python_version": "3.11.2",
            "python_source_tarball": str(CACHE / "fixtures/python/Python-3.11.2.tgz"),
            "python_source_sha256": "2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849",
            "python_archive_dir": str(self.archives),
            # The first host builds each venv, the others unpack it (emptied at each run start).
            "app_venv_archive_dir": str(self.venv_archives),
            "app_repo": "file:///opt/bench/app.git",
            "app_env": {"ENVIRONMENT": "test", "DEBUG": "false",
                        "DATABASE_URL": "sqlite+aiosqlite:////srv/app/shared/data/app.db"},
            "app_gunicorn_workers": 2,
            "nginx_server_names": ["localhost"],
            # The stack as users run it, hardening included; root logs in with its key only.
            "hardening_ssh_permit_root_login": "prohibit-password",
        }}}}}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.inventory.write_text(json.dumps(inventory, indent=1))

    # ---------------------------------------------------------------- app repository
    def make_repo(self) -> None:
        for path in (WORK / "repo", self.checkout):
            shutil.rmtree(path, ignore_errors=True)
        self.repo.parent.mkdir(parents=True)
        sh("git", "clone", "--quiet", "--bare", str(CACHE / "fixtures/app.git"), str(self.repo))
        sh("git", "clone", "--quiet", str(self.repo), str(self.checkout))

    def commit(self, requirements: bool = False) -> None:
        """Push a new commit: code only, or a changed requirements.txt (a new venv)."""
        self.commits += 1
        target = self.checkout / ("requirements.txt" if requirements else "app/__init__.py")
        with target.open("a") as f:
            f.write(f"# bench commit {self.commits}\n")
        git = ["git", "-C", str(self.checkout)]
        sh(*git, "add", "-A")
        sh(*git, "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "--quiet",
           "-m", f"bench commit {self.commits}")
        sh(*git, "push", "--quiet", "origin", "HEAD:main")

    # ---------------------------------------------------------------- playbooks
    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_FORCE_COLOR", "PY_COLORS")}
        env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                   PATH=f"{VENV_BIN}:{env.get('PATH', '')}")
        if self.mitogen:
            import ansible_mitogen

            env["ANSIBLE_STRATEGY_PLUGINS"] = str(Path(ansible_mitogen.__file__).parent / "plugins" / "strategy")
            env["ANSIBLE_STRATEGY"] = "mitogen_linear"
            # Mitogen's SSH ignores ansible_ssh_common_args' StrictHostKeyChecking=no.
            env["ANSIBLE_HOST_KEY_CHECKING"] = "False"
        return env

    def playbook(self, name: str, hosts: list[str], label: str, *extra: str, root: Path = ROOT) -> tuple[float, int]:
        """Run playbooks/NAME of the tree at root on hosts; return (seconds, changed tasks summed over
        hosts). The CPU seconds of the ansible-playbook process tree are left in self.last_cpu."""
        self.logs.mkdir(parents=True, exist_ok=True)
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory), f"playbooks/{name}",
                "--limit", ",".join(hosts), *extra]
        self.loads.append(os.getloadavg()[0])
        logfile = self.logs / f"{self.prefix}{label}.log"
        env = self.env()
        env["ANSIBLE_CONFIG"] = str(root / "ansible.cfg")
        with logfile.open("w") as out:  # streamed, so a slow run can be watched
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.monotonic()
            result = subprocess.run(argv, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=1800)
            took = time.monotonic() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.last_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        stdout = logfile.read_text()
        self.last_tasks = sum(1 for line in stdout.splitlines() if line.startswith("TASK ["))
        if result.returncode != 0:
            raise RuntimeError(f"{name} ({label}) failed, see {logfile}:\n{stdout[-2500:]}")
        changed = 0
        for line in stdout.splitlines():
            if " changed=" in line and " ok=" in line:
                changed += int(line.split(" changed=")[1].split()[0])
        log(f"{label}: {took:.1f} s, changed {changed}")
        return took, changed

    # ---------------------------------------------------------------- records
    def record(self, key: str, label: str, runs: list[float], changed: list[int] | None = None, **extra) -> None:
        entry = {"label": label, "runs": [round(r, 2) for r in runs], "median": round(statistics.median(runs), 2),
                 "min": round(min(runs), 2), "max": round(max(runs), 2)}
        if changed is not None:
            entry["changed"] = changed
        entry.update(extra)
        self.results["timings"][key] = entry

    def repeat(self, key: str, label: str, n: int, step, hosts: list[str], prepare=None, **extra) -> None:
        runs, changed = [], []
        for i in range(n):
            if prepare:
                prepare()
            took, ch = step(f"{key}-{i + 1}", hosts)
            runs.append(took)
            changed.append(ch)
        self.record(key, label, runs, changed, hosts=len(hosts), **extra)

    def deploy(self, label: str, hosts: list[str]) -> tuple[float, int]:
        return self.playbook("deploy.yml", hosts, label)

    def rollback(self, label: str, hosts: list[str]) -> tuple[float, int]:
        return self.playbook("rollback.yml", hosts, label)

    # ---------------------------------------------------------------- phases
    def phase_cold(self) -> None:
        h = self.hosts
        if not self.args.quick:
            shutil.rmtree(self.archives, ignore_errors=True)
        # The first host builds the app's venv (as it compiles Python in a full run).
        shutil.rmtree(self.venv_archives, ignore_errors=True)
        self.archives.mkdir(parents=True, exist_ok=True)
        compiled = not (self.archives / "cpython-3.11.2-debian12-x86_64.tar.gz").exists()
        took, ch = self.deploy("cold-first", h[:1])
        self.record("cold_first", "cold provision, first host" + (" (Python compiled)" if compiled else
                    " (archive reused: --quick)"), [took], [ch], python_compiled=compiled)
        took, ch = self.deploy("cold-second", h[1:2])
        self.record("cold_second", "cold provision, second host (archive reused)", [took], [ch],
                    ratio_to_first=round(took / self.results["timings"]["cold_first"]["median"], 3))

    def phase_redeploys(self, suffix: str = "") -> None:
        n, one = self.args.runs, self.hosts[:1]
        tag = " (mitogen)" if suffix else ""
        self.repeat("rerun" + suffix, "deploy.yml rerun, nothing changed" + tag, self.args.rerun_runs, self.deploy, one)
        self.repeat("redeploy_code" + suffix, "redeploy, new commit, same requirements" + tag, n, self.deploy, one,
                    prepare=self.commit)
        self.repeat("rollback" + suffix, "rollback.yml (previous release)" + tag, n, self.rollback, one)

    def phase_requirements(self) -> None:
        self.repeat("redeploy_requirements", "redeploy, new commit, changed requirements (new venv)", self.args.runs,
                    self.deploy, self.hosts[:1], prepare=lambda: self.commit(requirements=True))

    def phase_mitogen(self) -> None:
        """The same rerun / redeploy / rollback with mitogen's mitogen_linear strategy."""
        self.mitogen, self.prefix = True, "mitogen-"
        try:
            # After the rollbacks host 1 serves an older commit: back to the head first (untimed).
            self.deploy("settle", self.hosts[:1])
            self.phase_redeploys("_mitogen")
            self.results["connection"] += "; rows marked (mitogen): mitogen_linear over the same SSH"
        finally:
            self.mitogen, self.prefix = False, ""

    def phase_fleet(self, suffix: str = "") -> None:
        h = self.hosts
        if len(h) > 2 and "cold_rest" not in self.results["timings"]:
            took, ch = self.deploy("cold-rest", h[2:])
            self.record("cold_rest", f"cold provision, {len(h) - 2} more hosts at once (archive reused)", [took], [ch])
        base = None
        for k in self.args.fleet:
            key = f"fleet_{k}{suffix}"
            same = self.results["timings"].get("redeploy_code" + suffix)
            if k == 1 and same:  # the same measurement: a code-only redeploy of host 1
                self.results["timings"][key] = dict(same, label=same["label"].replace(
                    "redeploy, new commit, same requirements", "redeploy (code only), 1 host (= above)"))
                base = same["median"]
                self.results["timings"][key]["ratio_to_1"] = 1.0
                continue
            # Untimed: every host of the k to the head first (one may lag behind, e.g. on an
            # older requirements.txt), so that the timed runs are code-only on all of them.
            self.deploy(f"settle-{k}", self.hosts[:k])
            self.repeat(key, f"redeploy (code only), {k} host{'s' if k > 1 else ''}" + (" (mitogen)" if suffix else ""),
                        self.args.runs, self.deploy, self.hosts[:k], prepare=self.commit)
            entry = self.results["timings"][key]
            base = base or entry["median"]
            entry["ratio_to_1"] = round(entry["median"] / base, 3)
        # The same fleet with nothing to change: the tool's own cost of more hosts, without
        # the hosts' CPU-bound work (app imports, Gunicorn's start) that the containers,
        # unlike real hosts, share on this machine's cores.
        k = max(self.args.fleet)
        rerun = self.results["timings"].get("rerun" + suffix)
        if k > 1 and rerun:
            key = f"fleet_rerun_{k}{suffix}"
            self.repeat(key, f"deploy.yml rerun, nothing changed, {k} hosts" + (" (mitogen)" if suffix else ""),
                        self.args.runs, self.deploy, self.hosts[:k])
            self.results["timings"][key]["ratio_to_1"] = round(self.results["timings"][key]["median"] / rerun["median"], 3)

    def phase_ab(self) -> None:
        """An A/B on the same containers: the playbooks of --ab BEFORE (a worktree under
        .cache/bench) and of this tree, or of --ab BEFORE..AFTER, alternating which goes first,
        for a no-change rerun and a code-only redeploy of one host: wall and controller CPU
        seconds, tasks run."""
        ref_before, _, ref_after = self.args.ab.partition("..")
        sides = {}
        for name, ref in (("before", ref_before), ("after", ref_after)):
            if not ref:
                sides[f"{name} (this tree)"] = ROOT
                continue
            sha = sh("git", "-C", str(ROOT), "rev-parse", "--short", ref).strip()
            tree = WORK / f"ab-{sha}"
            if not tree.exists():
                sh("git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref)
            sides[f"{name} ({sha})"] = tree
        one = self.hosts[:1]
        # Untimed, each side once: after it, the other side's rerun must change nothing (they
        # manage the host alike), or the no-change timings would time changes.
        for side, root in sides.items():
            self.playbook("deploy.yml", one, f"ab-settle-{side.split()[0]}", root=root)
        figures = {side: {"rerun": [], "rerun_cpu": [], "rerun_changed": [], "redeploy": [], "redeploy_cpu": []}
                   for side in sides}
        tasks = {}
        for i in range(self.args.runs):
            order = list(sides) if i % 2 == 0 else list(reversed(sides))
            for side in order:
                took, changed = self.playbook("deploy.yml", one, f"ab-rerun-{side.split()[0]}-{i + 1}", root=sides[side])
                figures[side]["rerun"].append(took)
                figures[side]["rerun_cpu"].append(self.last_cpu)
                figures[side]["rerun_changed"].append(changed)
                tasks.setdefault(side, {})["rerun"] = self.last_tasks
            for side in order:
                self.commit()
                took, _ = self.playbook("deploy.yml", one, f"ab-redeploy-{side.split()[0]}-{i + 1}", root=sides[side])
                figures[side]["redeploy"].append(took)
                figures[side]["redeploy_cpu"].append(self.last_cpu)
                tasks[side]["redeploy"] = self.last_tasks
        summary = {}
        for side, f in figures.items():
            summary[side] = {k: (round(statistics.median(v), 2) if not k.endswith("changed") else v) for k, v in f.items()}
            summary[side]["runs"] = {k: [round(x, 2) for x in v] for k, v in f.items() if not k.endswith("changed")}
            summary[side]["tasks"] = tasks[side]
        before, after = (summary[s] for s in sides)
        summary["ratio_after_to_before"] = {k: round(after[k] / before[k], 3)
                                            for k in ("rerun", "rerun_cpu", "redeploy", "redeploy_cpu")}
        self.results["ab"] = summary
        for side in sides:
            s = summary[side]
            log(f"{side}: rerun {s['rerun']} s (CPU {s['rerun_cpu']} s, {s['tasks']['rerun']} tasks, changed "
                f"{s['rerun_changed']}), code-only redeploy {s['redeploy']} s (CPU {s['redeploy_cpu']} s, "
                f"{s['tasks']['redeploy']} tasks)")
        log(f"after / before: {summary['ratio_after_to_before']}")

    def under_load(self, key: str, label: str, action) -> None:
        port = self.port(self.hosts[0], 443)
        with Load(f"https://localhost:{port}/items", clients=4, seconds=600, requests=500_000) as load:
            time.sleep(1)
            took, changed = action()
            time.sleep(1)
        r = load.result
        self.results.setdefault("load", {})[key] = {
            "label": label, "seconds": round(took, 2), "sent": r.sent, "failed": r.failed,
            "p50_ms": round(r.percentile(50) * 1000, 1), "p99_ms": round(r.percentile(99) * 1000, 1),
            "errors": r.errors}
        log(f"{label}: {r.summary()}")

    def phase_load(self) -> None:
        one = self.hosts[:1]

        def redeploy():
            self.commit()
            return self.deploy("load-redeploy", one)

        self.under_load("redeploy", "during a redeploy (code only)", redeploy)
        self.under_load("rollback", "during a rollback", lambda: self.rollback("load-rollback", one))

    def pin_servers(self, name: str, cpus: str) -> None:
        """Set the CPU affinity of the container's nginx and Gunicorn processes (from the host:
        inside, root may not move other users' processes)."""
        for line in sh("podman", "top", name, "hpid", "args").splitlines()[1:]:
            pid, _, args = line.strip().partition(" ")
            if "nginx" in args or "gunicorn" in args:
                sh("taskset", "-a", "-cp", cpus, pid, check=False)

    @staticmethod
    def cpu_busy() -> dict[str, tuple[int, int]]:
        stat = {}
        for line in open("/proc/stat"):
            if line.startswith("cpu") and line[3].isdigit():
                f = line.split()
                values = list(map(int, f[1:]))
                stat[f[0]] = (sum(values), values[3] + values[4])
        return stat

    def phase_rps(self) -> None:
        """Requests per second through nginx over TLS and straight to Gunicorn's socket.

        On a machine with 2+ cores the servers (nginx and Gunicorn) get core 0 and the client
        core 1: both paths then have the same CPU for the servers, and the client's own cost
        (its TLS, its Python) does not count against the path that needs TLS. Each path runs
        several times, alternating; the medians and the busy share of both cores are kept."""
        name = self.hosts[0]
        script = (ROOT / "bench" / "rps.py").read_text()
        sh("podman", "exec", "-i", name, "sh", "-c", "cat > /tmp/fd-bench-rps.py", input=script)
        slot = json.loads(sh("podman", "exec", name, "cat", "/srv/app/state.json"))["slot"]
        c, s, n = str(self.args.rps_clients), str(self.args.rps_seconds), self.args.rps_runs
        pinned = (os.cpu_count() or 1) >= 2
        client = ["taskset", "-c", "1"] if pinned else []
        out = {"pinned": pinned, "paths": {}}
        if pinned:
            self.pin_servers(name, "0")
        try:
            for path in self.args.rps_paths:
                runs: dict[str, list[dict]] = {"tls": [], "unix": []}
                for _ in range(n):
                    for kind, target in (("tls", "127.0.0.1:443"), ("unix", f"/run/app/{slot}.sock")):
                        before = self.cpu_busy()
                        line = sh("podman", "exec", name, *client, "python3", "/tmp/fd-bench-rps.py", kind, target,
                                  path, c, s)
                        after = self.cpu_busy()
                        result = json.loads(line.strip().splitlines()[-1])
                        result["cpu_busy_pct"] = {
                            cpu: round(100 * (1 - (after[cpu][1] - before[cpu][1]) / max(after[cpu][0] - before[cpu][0], 1)), 1)
                            for cpu in sorted(after)[:2]}
                        runs[kind].append(result)
                        log(f"rps {path} {kind}: {result}")
                tls = statistics.median(r["rps"] for r in runs["tls"])
                unix = statistics.median(r["rps"] for r in runs["unix"])
                out["paths"][path] = {"nginx_tls_rps": tls, "gunicorn_unix_rps": unix, "ratio": round(tls / unix, 3),
                                      "runs": runs}
        finally:
            if pinned:
                self.pin_servers(name, f"0-{(os.cpu_count() or 1) - 1}")
        self.results["rps"] = {"clients": int(c), "seconds": int(s), "runs": n, **out}

    # ---------------------------------------------------------------- output
    def machine(self) -> dict:
        mem = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
        commit = sh("git", "-C", str(ROOT), "rev-parse", "HEAD").strip()
        dirty = bool(sh("git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no").strip())
        return {"cores": os.cpu_count(), "memory_gib": round(mem / 1024 / 1024, 1),
                "kernel": platform.release(), "commit": commit, "dirty": dirty}

    def table(self) -> str:
        t = self.results["timings"]
        lines = ["| measurement | median s | min s | max s | runs | changed |", "|---|---|---|---|---|---|"]
        for key, e in t.items():
            extra = ""
            if "ratio_to_1" in e:
                extra = f" (x{e['ratio_to_1']:.2f} of 1 host)"
            if "ratio_to_first" in e:
                extra = f" ({e['ratio_to_first'] * 100:.0f}% of the first)"
            ch = ",".join(str(c) for c in e.get("changed", []))
            lines.append(f"| {e['label']}{extra} | {e['median']:.1f} | {e['min']:.1f} | {e['max']:.1f} | "
                         f"{len(e['runs'])} | {ch} |")
        for key, e in self.results.get("load", {}).items():
            lines.append(f"| under load {e['label']}: {e['seconds']:.1f} s; sent {e['sent']}, failed {e['failed']}, "
                         f"p50 {e['p50_ms']} ms, p99 {e['p99_ms']} ms | | | | 1 | |")
        if "rps" in self.results:
            r = self.results["rps"]
            how = "servers on core 0, client on core 1" if r.get("pinned") else "unpinned"
            for path, e in r.get("paths", {}).items():
                lines.append(f"| req/s `{path}` ({r['clients']} clients, {r['seconds']} s, median of {r['runs']}; {how}): "
                             f"nginx TLS {e['nginx_tls_rps']:.0f}, Gunicorn socket {e['gunicorn_unix_rps']:.0f}, "
                             f"ratio {e['ratio']:.2f} | | | | {r['runs']} | |")
        if not self.results.get("complete"):
            lines.append("| (partial: the run did not finish every phase; see notes) | | | | | |")
        return "\n".join(lines)

    def chart(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t = self.results["timings"]
        keys = list(t)
        labels = [t[k]["label"] for k in keys]
        med = [t[k]["median"] for k in keys]
        lo = [t[k]["median"] - t[k]["min"] for k in keys]
        hi = [t[k]["max"] - t[k]["median"] for k in keys]
        fig, ax = plt.subplots(figsize=(10, 0.45 * len(keys) + 1.5))
        ax.barh(range(len(keys)), med, xerr=[lo, hi], color="#4c72b0", capsize=3)
        ax.set_yticks(range(len(keys)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("seconds (median, min-max bars; log scale)")
        for i, (m, top) in enumerate(zip(med, (t[k]["max"] for k in keys))):
            ax.text(top * 1.06, i, f"{m:.1f}", va="center", fontsize=8)  # right of the max bar
        ax.set_title(f"fastapi-deploy benchmark {self.results['date'][:10]} "
                     f"({self.results['machine']['cores']} cores, over SSH with pipelining)", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)

    def write(self, show: bool = True) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        name = "latest" if not self.args.quick else "quick"
        self.results["table"] = self.table()
        (RESULTS / f"{name}.json").write_text(json.dumps(self.results, indent=2) + "\n")
        self.chart(RESULTS / f"{name}.png")
        if not show:
            return
        print()
        print(self.results["table"])
        print(f"\nwritten: {RESULTS / (name + '.json')}, {RESULTS / (name + '.png')}")

    def run(self) -> None:
        a = self.args
        started = time.monotonic()
        self.results.update(date=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                            machine=self.machine(), mode="quick" if a.quick else "full",
                            connection="ssh, pipelining", load_average_start=list(os.getloadavg()))
        self.make_repo()
        log(f"containers: {' '.join(self.hosts)}")
        self.start_containers()
        # Cheapest and most telling first; the results are written after every phase, so
        # an interrupted run still leaves what it measured (marked complete: false).
        order = [("cold", self.phase_cold), ("ab", self.phase_ab), ("redeploy", self.phase_redeploys), ("load", self.phase_load),
                 ("rps", self.phase_rps), ("mitogen", self.phase_mitogen),
                 ("requirements", self.phase_requirements), ("fleet", self.phase_fleet)]
        if a.mitogen:
            a.phases.append("mitogen")
        self.results["complete"] = False
        failed = False
        for name, phase in order:
            if name not in a.phases:
                continue
            try:
                phase()
            except Exception as exc:
                self.results["notes"].append(f"phase {name} failed: {exc}"[:3000])
                log(f"phase {name} failed: {exc}")
                failed = True
                if name == "cold":
                    break
            self.finish(started, write=True)
        self.results["complete"] = not failed
        self.finish(started, write=True, show=True)
        if failed:
            sys.exit(1)

    def finish(self, started: float, write: bool, show: bool = False) -> None:
        self.results["load_average_end"] = list(os.getloadavg())
        if self.loads:
            self.results["load_average_during_playbooks"] = {
                "mean_1min": round(statistics.mean(self.loads), 2), "max_1min": round(max(self.loads), 2)}
        self.results["total_seconds"] = round(time.monotonic() - started, 1)
        if write and self.results["timings"]:
            self.write(show)


def main() -> None:
    p = argparse.ArgumentParser(description="Deploy benchmark (see bench/README.md)")
    p.add_argument("--quick", action="store_true",
                   help="1 run each, hosts 1 and 2, reuse the main Python archive (no compile)")
    p.add_argument("--mitogen", action="store_true", help="also time rerun/redeploy/rollback with mitogen_linear")
    p.add_argument("--runs", type=int, default=None, help="runs per redeploy/rollback timing (default 3)")
    p.add_argument("--phases", default="cold,redeploy,load,rps,requirements,fleet")
    p.add_argument("--keep", action="store_true", help="keep the containers afterwards (debugging)")
    p.add_argument("--ab", metavar="BEFORE[..AFTER]", default=None,
                   help="A/B on the same containers: git ref BEFORE against this tree, or against AFTER (adds the ab phase; "
                        "--phases cold,ab for it alone)")
    p.add_argument("--fleet", dest="fleet_counts", default=None, help="host counts of the fleet phase, e.g. 1,4 (default 1,2,4; --quick 1,2)")
    a = p.parse_args()
    a.phases = a.phases.split(",")
    if a.ab and "ab" not in a.phases:
        a.phases.append("ab")
    if a.quick:
        a.runs = a.runs or 1
        a.rerun_runs = a.runs
        a.fleet = [1, 2]
    else:
        a.runs = a.runs or 3
        a.rerun_runs = max(a.runs, 3)
        a.fleet = [1, 2, 4]
    if a.fleet_counts:
        a.fleet = sorted({int(k) for k in a.fleet_counts.split(",")} | {1})
    a.hosts = max(a.fleet) if "fleet" in a.phases else 2
    a.rps_clients, a.rps_seconds, a.rps_runs = 4, (5 if a.quick else 10), (1 if a.quick else 3)
    # The sample app's read endpoint (a database query), and its health check.
    a.rps_paths = ["/items?limit=10", "/health"]
    bench = Bench(a)

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    try:
        bench.run()
    finally:
        if not a.keep:
            bench.cleanup()


if __name__ == "__main__":
    main()
