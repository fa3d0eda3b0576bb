"""Deploy benchmark: provisions its own containers (fd-bench-*), times the playbooks over SSH.

Run it through bench/run (which runs scripts/setup first). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
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
        for name in self.hosts:
            self.prepare_container(name)
        self.write_inventory()

    def prepare_container(self, name: str) -> None:
        """Wait for systemd, authorise the key for root and start sshd."""
        pub = KEY.with_suffix(".pub").read_text()
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
        runs, changed, cpu = [], [], []
        for i in range(n):
            if prepare:
                prepare()
            took, ch = step(f"{key}-{i + 1}", hosts)
            runs.append(took)
            changed.append(ch)
            cpu.append(self.last_cpu)
        # The controller's CPU seconds (the playbook's process tree), the tool's own cost.
        self.record(key, label, runs, changed, hosts=len(hosts), cpu_median=round(statistics.median(cpu), 2),
                    cpu_runs=[round(c, 2) for c in cpu], **extra)

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
        # The same fleets with nothing to change: the tool's own cost of more hosts, without
        # the hosts' CPU-bound work (app imports, Gunicorn's start) that the containers,
        # unlike real hosts, share on this machine's cores.
        rerun = self.results["timings"].get("rerun" + suffix)
        for k in self.args.fleet:
            if k == 1 or not rerun:
                continue
            key = f"fleet_rerun_{k}{suffix}"
            self.repeat(key, f"deploy.yml rerun, nothing changed, {k} hosts" + (" (mitogen)" if suffix else ""),
                        self.args.runs, self.deploy, self.hosts[:k])
            self.results["timings"][key]["ratio_to_1"] = round(self.results["timings"][key]["median"] / rerun["median"], 3)
        if not suffix:
            self.controller_cost()

    def controller_cost(self) -> None:
        """Controller CPU seconds per extra host, for a no-change run and a code-only
        redeploy, from the fleet's medians (k hosts against 1), and the targets."""
        t = self.results["timings"]
        one = {"rerun": t.get("rerun"), "redeploy": t.get("redeploy_code")}
        cost = {"per_extra_host": {}, "targets": {}}
        for kind, prefix in (("rerun", "fleet_rerun_"), ("redeploy", "fleet_")):
            if not one[kind] or "cpu_median" not in one[kind]:
                continue
            for k in self.args.fleet:
                entry = t.get(f"{prefix}{k}")
                if k == 1 or not entry or "cpu_median" not in entry:
                    continue
                cost["per_extra_host"].setdefault(kind, {})[k] = round(
                    (entry["cpu_median"] - one[kind]["cpu_median"]) / (k - 1), 2)
        targets = {"rerun": 1.5, "redeploy": 2.5}
        for kind, target in targets.items():
            figures = cost["per_extra_host"].get(kind)
            if figures:
                worst = max(figures.values())
                cost["targets"][f"{kind}_cpu_per_extra_host"] = {
                    "target": target, "measured": worst, "met": worst <= target, "by": round(worst - target, 2)}
        if one["rerun"]:
            cost["targets"]["rerun_one_host_seconds"] = {
                "target": 5.0, "measured": one["rerun"]["median"], "met": one["rerun"]["median"] <= 5.0,
                "by": round(one["rerun"]["median"] - 5.0, 2)}
        self.results["controller_cost"] = cost
        log(f"controller CPU s per extra host: {cost['per_extra_host']}")
        for name, v in cost["targets"].items():
            log(f"target {name}: {v['measured']} against {v['target']}: "
                + ("met" if v["met"] else f"missed by {v['by']}"))

    def phase_baseline(self) -> None:
        """NOT the product: the book's procedure for a traditional server (bench/baseline/), in a
        container of the same image with the same sample app and repository. Its code-only
        redeploy (git pull, pip install -r requirements.txt, alembic upgrade head,
        supervisorctl restart, over SSH) is timed like the product's and run once under the
        same load; the ratios are the product's figures of this run to the baseline's."""
        name = f"{PREFIX}baseline"
        sh("podman", "run", "-d", "--name", name, "--hostname", name, "--systemd=always",
           "-p", "127.0.0.1::22", "-p", "127.0.0.1::443",
           "-v", f"{WORK / 'repo'}:/opt/bench:ro", IMAGE, "/sbin/init")
        self.prepare_container(name)
        for cert in Path("/usr/local/share/ca-certificates").glob("*.crt"):
            sh("podman", "cp", str(cert), f"{name}:/usr/local/share/ca-certificates/{cert.name}")
        setup = (ROOT / "bench" / "baseline" / "setup.sh").read_text()
        started = time.monotonic()
        sh("podman", "exec", "-i", name, "sh", "-s", "file:///opt/bench/app.git", input=setup)
        log(f"baseline: set up by hand's procedure in {time.monotonic() - started:.1f} s (untimed)")
        redeploy = (ROOT / "bench" / "baseline" / "redeploy.sh").read_text()
        port = self.port(name, 22)
        argv = ["ssh", "-p", str(port), "-i", str(KEY), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "root@127.0.0.1", "sh", "-s"]

        def run(label: str, _hosts=None) -> tuple[float, int]:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.monotonic()
            result = subprocess.run(argv, input=redeploy, capture_output=True, text=True, timeout=900)
            took = time.monotonic() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            self.last_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            if result.returncode != 0:
                raise RuntimeError(f"baseline redeploy failed: {result.stdout[-1500:]}{result.stderr[-1500:]}")
            log(f"baseline {label}: {took:.1f} s")
            return took, 0

        self.repeat("baseline_redeploy", "baseline, the book's procedure: redeploy (code only)", self.args.runs,
                    run, [name], prepare=self.commit)
        https = self.port(name, 443)
        with Load(f"https://localhost:{https}/items", clients=4, seconds=600, requests=500_000) as load:
            time.sleep(1)
            self.commit()
            took, _ = run("under load")
            time.sleep(1)
        r = load.result
        self.results.setdefault("load", {})["baseline_redeploy"] = {
            "label": "during the baseline's redeploy (the book's procedure)", "seconds": round(took, 2),
            "sent": r.sent, "failed": r.failed, "p50_ms": round(r.percentile(50) * 1000, 1),
            "p99_ms": round(r.percentile(99) * 1000, 1), "errors": r.errors}
        log(f"baseline under load: {r.summary()}")
        ours = self.results["timings"].get("redeploy_code")
        ours_load = self.results.get("load", {}).get("redeploy")
        comparison = {"baseline_redeploy_s": self.results["timings"]["baseline_redeploy"]["median"],
                      "baseline_failed_requests": r.failed, "baseline_sent": r.sent}
        if ours:
            comparison["ours_redeploy_s"] = ours["median"]
            comparison["redeploy_time_ratio_ours_to_baseline"] = round(
                ours["median"] / comparison["baseline_redeploy_s"], 2)
        if ours_load:
            comparison.update(ours_failed_requests=ours_load["failed"], ours_sent=ours_load["sent"])
        self.results["baseline"] = comparison
        log(f"baseline comparison: {comparison}")
        sh("podman", "rm", "-f", "-t", "2", name, check=False)

    def phase_canary(self) -> None:
        """A rolling deploy that stops: deploy_serial [1, "50%"] on 4 hosts, where the third
        host's health check fails (its health path answers 404 for this run only). Hosts 1 and
        2 must serve the new release, 3 and 4 the old, the run must fail naming host 3, and
        the load through every host's nginx must lose no request."""
        h = self.hosts[:4]
        if len(h) < 4:
            raise RuntimeError("the canary phase needs 4 hosts (--fleet 4)")
        if len(self.hosts) > 2 and "cold_rest" not in self.results["timings"]:
            took, ch = self.deploy("cold-rest", self.hosts[2:])
            self.record("cold_rest", f"cold provision, {len(self.hosts) - 2} more hosts at once (archive reused)",
                        [took], [ch])
        self.deploy("canary-settle", h)  # untimed: every host at the head
        def sha(name: str) -> str:
            return json.loads(sh("podman", "exec", name, "cat", "/srv/app/state.json"))["sha"]

        old = {name: sha(name) for name in h}
        self.commit()
        new = sh("git", "-C", str(self.checkout), "rev-parse", "HEAD").strip()
        broken = json.loads(self.inventory.read_text())
        broken["all"]["children"]["web"]["hosts"][h[2]]["app_health_path"] = "/no-such-page"
        inventory = self.run_dir / "inventory-canary.json"
        inventory.write_text(json.dumps(broken, indent=1))
        loads = [Load(f"https://localhost:{self.port(name, 443)}/items", clients=1, seconds=600, requests=500_000)
                 for name in h]
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "playbooks/deploy.yml",
                "--limit", ",".join(h), "-e", json.dumps({"deploy_serial": [1, "50%"]})]
        logfile = self.logs / "canary-deploy.log"
        for load in loads:
            load.start()
        try:
            time.sleep(1)
            started = time.monotonic()
            with logfile.open("w") as out:
                result = subprocess.run(argv, cwd=ROOT, env=self.env(), stdout=out, stderr=subprocess.STDOUT,
                                        timeout=1800)
            took = time.monotonic() - started
            time.sleep(1)
        finally:
            results = [load.stop() for load in loads]
        output = logfile.read_text()
        serving = {name: sha(name) for name in h}
        failed_hosts = sorted(set(re.findall(r"^fatal: \[([^\]]+)\]", output, re.M)))
        checks = {
            "the run failed": result.returncode != 0,
            "it names host 3 only": failed_hosts == [h[2]],
            "hosts 1 and 2 serve the new release": all(serving[n] == new for n in h[:2]),
            "hosts 3 and 4 serve the old release": all(serving[n] == old[n] != new for n in h[2:]),
            "no failed request through any host": all(r.failed == 0 and r.sent > 0 for r in results),
        }
        self.results["canary"] = {
            "label": 'deploy_serial [1, "50%"] on 4 hosts, host 3 unhealthy', "seconds": round(took, 2),
            "failed_hosts": failed_hosts, "serving_new": [n for n in h if serving[n] == new],
            "loads": {n: {"sent": r.sent, "failed": r.failed, "errors": r.errors} for n, r in zip(h, results)},
            "checks": checks}
        for n, r in zip(h, results):
            log(f"canary: {n} serves {'the new' if serving[n] == new else 'the old'} release; load {r.summary()}")
        log(f"canary: {took:.1f} s, failed hosts {failed_hosts}; " + "; ".join(
            f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items()))
        # Untimed: every host on the new release, for the phases after this one.
        self.deploy("canary-after", h)
        if not all(checks.values()):
            raise RuntimeError(f"canary: {[k for k, v in checks.items() if not v]}; see {logfile}")

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
        if "controller_cost" in self.results:
            c = self.results["controller_cost"]
            for kind, figures in c["per_extra_host"].items():
                lines.append(f"| controller CPU s per extra host, {kind}: "
                             + ", ".join(f"{k} hosts {v:.2f}" for k, v in figures.items()) + " | | | | | |")
            for name, v in c["targets"].items():
                lines.append(f"| target {name}: {v['measured']} against {v['target']}, "
                             + ("met" if v["met"] else f"missed by {v['by']}") + " | | | | | |")
        if "baseline" in self.results:
            b = self.results["baseline"]
            if "redeploy_time_ratio_ours_to_baseline" in b:
                lines.append(f"| code-only redeploy, this project / the book's procedure: x{b['redeploy_time_ratio_ours_to_baseline']:.2f} "
                             f"({b['ours_redeploy_s']:.1f} s / {b['baseline_redeploy_s']:.1f} s); failed requests under load: "
                             f"{b.get('ours_failed_requests', '-')} of {b.get('ours_sent', '-')} against {b['baseline_failed_requests']} "
                             f"of {b['baseline_sent']} | | | | | |")
        if "canary" in self.results:
            c = self.results["canary"]
            failed = sum(x["failed"] for x in c["loads"].values())
            sent = sum(x["sent"] for x in c["loads"].values())
            lines.append(f"| {c['label']}: stopped after {c['seconds']:.1f} s naming {', '.join(c['failed_hosts'])}; "
                         f"new release on {', '.join(c['serving_new'])}; through 4 hosts sent {sent}, failed {failed}; "
                         f"{'as expected' if all(c['checks'].values()) else 'NOT as expected'} | | | | 1 | |")
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
        # The baseline (the book's manual procedure, bench/baseline/) in another colour.
        colours = ["#dd8452" if k.startswith("baseline") else "#4c72b0" for k in keys]
        ax.barh(range(len(keys)), med, xerr=[lo, hi], color=colours, capsize=3)
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
                 ("baseline", self.phase_baseline),
                 ("rps", self.phase_rps), ("mitogen", self.phase_mitogen),
                 ("requirements", self.phase_requirements), ("fleet", self.phase_fleet),
                 ("canary", self.phase_canary)]
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
    p.add_argument("--phases", default="cold,redeploy,load,baseline,rps,requirements,fleet,canary")
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
    if "canary" in a.phases:
        a.hosts = max(a.hosts, 4)
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
