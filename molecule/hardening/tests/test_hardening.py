"""The hardened host, judged from outside: SSH, firewall, fail2ban, the app still served."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

import conftest
from conftest import SSH_POLICY, ssh

# The scenario's own image (Debian 13 here, 12 in hardening-debian12).
IMAGE = conftest.image_of(f"fd-{os.environ.get('MOLECULE_SCENARIO_NAME', 'hardening')}")
# nginx_client_max_body_size in molecule.yml (1m).
BODY_LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def name(host):
    return host.backend.get_hostname()


@pytest.fixture(scope="module")
def ssh_port(name):
    return conftest.published_port(name, 22)


@pytest.fixture(scope="module")
def client(name):
    with httpx.Client(base_url=f"https://localhost:{conftest.published_port(name, 443)}", verify=False, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def container_ip(name):
    out = subprocess.run(
        ["podman", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert out, "the container has no network address"
    return out[0]


def from_another_container(script: str) -> subprocess.CompletedProcess:
    """Run a shell script in a throwaway container on the same podman network."""
    return subprocess.run(
        ["podman", "run", "--rm", "--network", "podman", IMAGE, "bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
    )


# --- what could not apply in a container ---------------------------------------------


def test_exactly_sysctl_and_auditd_are_reported_skipped_in_a_container(host):
    fact = json.loads(host.file("/etc/ansible/facts.d/hardening.fact").content_string)
    assert [s["item"] for s in fact["skipped"]] == ["sysctl", "auditd"]
    reasons = {s["item"]: s["reason"] for s in fact["skipped"]}
    assert "/proc/sys is mounted read-only" in reasons["sysctl"]
    assert "auditctl -s" in reasons["auditd"]
    # Skipped means not applied here, but written for a VM or server to apply.
    sysctl = host.file("/etc/sysctl.d/90-hardening.conf")
    for line in ("net.ipv4.tcp_syncookies = 1", "net.ipv4.conf.all.accept_redirects = 0",
                 "net.ipv4.conf.all.accept_source_route = 0", "net.ipv4.conf.all.rp_filter = 1",
                 "fs.suid_dumpable = 0"):
        assert sysctl.contains(line), line
    assert host.file("/etc/audit/rules.d/50-hardening.rules").contains("-k identity")
    assert not host.service("auditd").is_running


# --- the app still works ---------------------------------------------------------------


def test_the_app_still_answers_over_https(client):
    response = client.get("/health")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"


def test_an_upload_at_the_body_limit_reaches_the_app(client):
    envelope = b'{"name": "upload-at-limit", "description": "%s"}'
    body = envelope % (b"x" * (BODY_LIMIT - len(envelope % b"")))
    assert len(body) == BODY_LIMIT
    response = client.post("/items", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 201, response.text[:500]
    stored = client.get(f"/items/{response.json()['id']}").json()
    assert len(stored["description"]) == BODY_LIMIT - len(envelope % b"")


def test_a_body_over_the_limit_is_refused_by_nginx(client):
    body = b"x" * (BODY_LIMIT + 1)
    response = client.post("/items", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "nginx" in response.text or "Request Entity Too Large" in response.text


def test_the_app_runs_with_least_privilege(host):
    assert host.user("app").shell == "/usr/sbin/nologin"
    assert host.file("/srv/app/current/app/main.py").user == "root"
    # Symlinks are left out: find judges them by their target (the app can read its .env and
    # connect to the socket nginx's serving.sock points at) but they sit in root's
    # directories, where the app cannot replace them.
    writable = host.run("runuser -u app -- find /srv/app ! -type l -writable").stdout.split()
    allowed = ("/srv/app/shared/data", "/srv/app/shared/backups")
    # Nothing else: not its environment files (root:app 0640), not the build account's.
    unexpected = [p for p in writable if not p.startswith(allowed)]
    assert unexpected == [], unexpected
    # The build account writes only its own directory and the app's history.
    built = host.run("runuser -u app-build -- find /srv/app ! -type l -writable").stdout.split()
    assert [p for p in built if not p.startswith(("/srv/app/build", "/srv/app/repo.git"))] == []
    assert host.run("runuser -u app -- touch /run/app/probe && rm -f /run/app/probe").rc == 0
    # And on the whole hardened host, nothing but what the app role's README lists.
    assert conftest.undocumented_app_writable(host) == []


def test_nginx_and_supervisor_logs_are_not_world_readable(host):
    for directory in ("/var/log/nginx", "/var/log/supervisor"):
        d = host.file(directory)
        assert d.mode & 0o007 == 0, f"{directory} is open to others ({oct(d.mode)})"
        listing = host.run(f"runuser -u nobody -- ls {directory}")
        assert listing.rc != 0, f"nobody can list {directory}"
    for log in ("/var/log/nginx/access.log", "/var/log/supervisor/supervisord.log"):
        assert host.run(f"runuser -u nobody -- cat {log}").rc != 0, f"nobody can read {log}"


# --- SSH -----------------------------------------------------------------------------


def test_ssh_audit_passes_the_hardened_policy_of_the_release(host, ssh_port):
    policy = SSH_POLICY[conftest.debian_major(host)]
    result = subprocess.run(
        ["ssh-audit", "-P", policy, "-p", str(ssh_port), "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Passed" in result.stdout


def test_key_login_works_for_the_allowed_user(ssh_port):
    result = ssh(ssh_port, "deploy", command="id -un")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "deploy"


def test_root_login_is_refused_even_with_an_authorized_key(host, ssh_port):
    # The shared prepare authorised the same key for root.
    assert host.file("/root/.ssh/authorized_keys").size > 0
    result = ssh(ssh_port, "root")
    assert result.returncode == 255
    assert "Permission denied" in result.stderr


def test_passwords_are_not_offered(ssh_port):
    result = ssh(
        ssh_port, "deploy",
        "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password,keyboard-interactive",
    )
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr, result.stderr


def test_sshd_settings(host):
    config = host.run("sshd -T").stdout.lower().splitlines()
    for expected in ("permitrootlogin no", "passwordauthentication no", "kbdinteractiveauthentication no",
                     "maxauthtries 3", "loglevel verbose", "allowtcpforwarding no", "x11forwarding no",
                     "allowagentforwarding no", "clientaliveinterval 300", "clientalivecountmax 2",
                     "allowusers deploy"):
        assert expected in config, expected


def test_host_keys_are_fresh_ed25519_and_rsa_4096(host):
    keys = sorted(Path(p).name for p in host.run("ls /etc/ssh/ssh_host_*_key").stdout.split())
    assert keys == ["ssh_host_ed25519_key", "ssh_host_rsa_key"]
    assert host.run("ssh-keygen -l -f /etc/ssh/ssh_host_rsa_key.pub").stdout.split()[0] == "4096"
    ours = host.file("/etc/ssh/ssh_host_ed25519_key.pub").content_string.split()[1]
    image = subprocess.run(
        ["podman", "run", "--rm", IMAGE, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"],
        check=True, capture_output=True, text=True,
    ).stdout.split()[1]
    assert ours != image, "the host still has the image's shared host key"
    small = host.run("awk '$1 !~ /^#/ && NF >= 7 && $5 < 3071' /etc/ssh/moduli").stdout
    assert small == ""


# --- firewall ----------------------------------------------------------------------------


def test_the_ruleset_denies_by_default_and_opens_the_expected_ports(host):
    ruleset = host.run("nft list table inet hardening")
    assert ruleset.rc == 0, ruleset.stderr
    text = ruleset.stdout
    assert "hook input priority filter; policy drop;" in text
    for rule in ("tcp dport 22 accept", "tcp dport 80 accept", "tcp dport 443 accept",
                 "ip saddr 10.89.0.0/24 tcp dport 9100 accept", "ip6 saddr fd00::/8 tcp dport 9100 accept"):
        assert rule in text, rule
    assert host.service("nftables").is_enabled


def test_a_port_not_opened_is_dropped_for_other_hosts(host, container_ip):
    """A listener on 8000 answers locally but not to another container; 443 does."""
    host.run("systemd-run --unit fd-test-listener python3 -m http.server 8000 --bind 0.0.0.0")
    try:
        local = host.run("for i in $(seq 20); do python3 -c \"import urllib.request as u; "
                         "u.urlopen('http://127.0.0.1:8000/', timeout=2)\" && exit 0; sleep 0.5; done; exit 1")
        assert local.rc == 0, "the test listener did not start"
        probe = from_another_container(
            "python3 - <<'PY'\n"
            "import socket\n"
            "for port in (443, 8000):\n"
            "    try:\n"
            f"        socket.create_connection(('{container_ip}', port), timeout=3).close(); print(port, 'open')\n"
            "    except TimeoutError:\n"
            "        print(port, 'dropped')\n"
            "    except OSError as e:\n"
            "        print(port, 'refused', e)\n"
            "PY"
        )
        assert probe.returncode == 0, probe.stderr
        assert probe.stdout.split("\n")[:2] == ["443 open", "8000 dropped"], probe.stdout
    finally:
        host.run("systemctl stop fd-test-listener")


# --- fail2ban ------------------------------------------------------------------------


def test_fail2ban_watches_sshd_on_its_real_port_and_ignores_the_listed_hosts(host):
    status = host.run("fail2ban-client status sshd")
    assert status.rc == 0, status.stderr
    assert "_SYSTEMD_UNIT=ssh.service" in status.stdout
    sshd_port = [line.split()[1] for line in host.run("sshd -T").stdout.splitlines() if line.startswith("port ")]
    jail_port = host.run("fail2ban-client get sshd action nftables-multiport port").stdout.strip()
    assert [jail_port] == sshd_port
    assert "10.88.0.1" in host.run("fail2ban-client get sshd ignoreip").stdout


def test_repeated_failed_logins_from_another_host_are_banned(host, container_ip):
    probe = from_another_container(
        "for i in 1 2 3 4 5 6; do ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o ConnectTimeout=3 "
        f"nosuchuser@{container_ip} true 2>/dev/null; done; hostname -I"
    )
    attacker = probe.stdout.split()[-1]
    try:
        banned = ""
        for _ in range(20):
            banned = host.run("fail2ban-client get sshd banned").stdout
            if attacker in banned:
                break
            host.run("sleep 1")
        assert attacker in banned, host.run("fail2ban-client status sshd").stdout
        assert attacker in host.run("nft list ruleset").stdout
    finally:
        host.run(f"fail2ban-client set sshd unbanip {attacker}")


# --- upgrades and system ---------------------------------------------------------------


def test_unattended_security_upgrades_are_on(host):
    config = host.run("apt-config dump").stdout
    assert 'APT::Periodic::Unattended-Upgrade "1";' in config
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in config
    assert 'Unattended-Upgrade::Automatic-Reboot-Time "03:30";' in config
    assert "origin=Debian,codename=${distro_codename},label=Debian-Security" in host.file(
        "/etc/apt/apt.conf.d/50unattended-upgrades").content_string
    assert host.package("unattended-upgrades").is_installed


def test_login_sessions_get_no_core_dumps_and_a_private_umask(ssh_port):
    result = ssh(ssh_port, "deploy", command="bash -lc 'ulimit -Hc; umask'")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "0027"]


def test_login_defs_and_su(host):
    defs = host.file("/etc/login.defs").content_string.splitlines()
    for line in ("UMASK\t027", "PASS_MAX_DAYS\t365", "PASS_MIN_DAYS\t1", "PASS_WARN_AGE\t14"):
        assert line in defs, line
    su = [line.split() for line in host.file("/etc/pam.d/su").content_string.splitlines()]
    assert ["auth", "required", "pam_wheel.so", "use_uid", "group=root"] in su


def test_unneeded_kernel_modules_banner_and_cron(host):
    modprobe = host.file("/etc/modprobe.d/hardening.conf").content_string.splitlines()
    for module in ("dccp", "sctp", "rds", "tipc", "usb-storage", "firewire-core"):
        assert f"install {module} /bin/false" in modprobe, module
    assert "unauthorised use is prohibited" in host.file("/etc/issue.net").content_string
    assert host.file("/etc/cron.d").mode == 0o700
