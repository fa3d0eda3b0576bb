"""After the converge: both web hosts serve the app over HTTPS from one PostgreSQL database on
a host of its own, reached over verified TLS, with a login that owns its database and
nothing else, and a port closed to every other container (firewall and pg_hba.conf)."""

from __future__ import annotations

import json
import shlex
import time

import pytest

from pgtest import BACKUPS, DB, OTHER, WEB, get, host, post_item, psql, revision, run_as_app, serving

# A PostgreSQL client from the standard library: the first answer to a startup message,
# over TLS. "R" is an authentication request (pg_hba.conf let the address in); "E" an
# error, its message printed.
STARTUP = r"""
import socket, ssl, struct, sys
s = socket.create_connection((sys.argv[1], 5432), timeout=5)
s.sendall(struct.pack("!ii", 8, 80877103))
assert s.recv(1) == b"S", "no TLS"
context = ssl.create_default_context(); context.check_hostname = False; context.verify_mode = ssl.CERT_NONE
s = context.wrap_socket(s)
body = struct.pack("!i", 196608) + b"user\0app\0database\0app\0\0"
s.sendall(struct.pack("!i", len(body) + 4) + body)
kind = s.recv(1).decode()
size = struct.unpack("!i", s.recv(4))[0]
data = s.recv(size)
fields = dict((f[:1], f[1:]) for f in data.split(b"\0") if f)
print(kind, fields.get(b"M", b"").decode())
"""


def address(name: str) -> str:
    return host(name).check_output("hostname -I").split()[0]


def startup(client: str) -> str:
    return host(client).check_output(f"python3 -c {shlex.quote(STARTUP)} {DB}")


def test_each_web_host_reads_and_writes_the_shared_database():
    one = post_item(WEB[0], "written through web1")
    two = post_item(WEB[1], "written through web2")
    for name in WEB:
        listed = get(name, "/items?limit=1000").json()
        assert one in listed and two in listed, name
        health = get(name, "/health").json()
        assert health["status"] == "ok" and health["database_revision"] == "0002_item_description", health
    assert revision() == "0002_item_description"


def test_the_workers_of_both_hosts_share_one_queue_in_postgresql_and_the_job_writes_to_it():
    jobs = [post_item(WEB[i % 2], "job:0.2")["id"] for i in range(6)]
    releases = {serving(name)["release"] for name in WEB}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = psql(f"SELECT description FROM items WHERE id IN ({', '.join(map(str, jobs))}) ORDER BY id").splitlines()
        if all(line.startswith("done by ") for line in done):
            break
        time.sleep(0.5)
    assert len(done) == 6 and {line.removeprefix("done by ") for line in done} <= releases, done
    # The job, started as its timer starts it, in web2's serving release.
    result = host(WEB[1]).run("systemctl start app.stamp.service")
    assert result.rc == 0, result.stderr
    assert psql("SELECT description FROM items WHERE name = 'stamp' ORDER BY id DESC LIMIT 1") == (
        f"stamped by {serving(WEB[1])['release']}")


def test_the_app_connects_over_tls_it_verifies_from_the_web_hosts_only():
    get(WEB[0], "/items"), get(WEB[1], "/items")
    sessions = psql("SELECT DISTINCT host(client_addr), ssl FROM pg_stat_activity JOIN pg_stat_ssl USING (pid)"
                    " WHERE usename = 'app'").splitlines()
    assert sorted(sessions) == sorted(f"{address(name)}|t" for name in WEB), sessions
    env = host(WEB[0]).file("/srv/app/shared/.env").content_string
    assert "PGSSLMODE=\"verify-full\"" in env and "DATABASE_URL=\"postgresql+asyncpg://app:" in env
    assert "@fd-pg-db:5432/app\"" in env
    # Without TLS the server refuses the app's own login (hostssl), from its own host.
    plain = host(WEB[0]).run(run_as_app(WEB[0], (
        "import os, psycopg; from sqlalchemy import make_url; u = make_url(os.environ['DATABASE_URL']);"
        "psycopg.connect(host=u.host, user=u.username, password=u.password, dbname=u.database, sslmode='disable')")))
    assert plain.rc != 0
    assert f'no pg_hba.conf entry for host "{address(WEB[0])}", user "app", database "app", no encryption' in plain.stderr


def test_the_login_owns_its_database_and_nothing_else():
    assert psql("SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin,"
                " left(rolpassword, 14) FROM pg_authid WHERE rolname = 'app'") == "f|f|f|f|f|t|SCRAM-SHA-256$"
    assert psql("SELECT pg_get_userbyid(datdba), datacl FROM pg_database WHERE datname = 'app'") == "app|{app=CTc/app}"
    assert psql("SELECT has_database_privilege('app', 'postgres', 'CREATE'), has_database_privilege('public', 'app', 'CONNECT')"
                ) == "f|f"
    assert psql("SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = relnamespace"
                " WHERE nspname = 'public'") == "app"
    assert psql("SELECT rolname FROM pg_roles WHERE rolcanlogin ORDER BY 1").split() == ["app", "postgres"]


def test_pg_hba_lets_in_the_app_from_the_web_hosts_only_and_the_server_listens_on_its_address():
    rules = psql("SELECT type, database, user_name, address, netmask, auth_method FROM pg_hba_file_rules ORDER BY line_number",
                 database="postgres").splitlines()
    assert rules == ["local|{all}|{postgres}|||peer"] + sorted(
        f"hostssl|{{app}}|{{app}}|{address(name)}|255.255.255.255|scram-sha-256" for name in WEB), rules
    assert psql("SHOW listen_addresses") == f"localhost,{address(DB)}"
    listening = host(DB).check_output("ss -ltnH 'sport = :5432'")
    assert f"{address(DB)}:5432" in listening and "127.0.0.1:5432" in listening, listening


def test_the_port_is_closed_to_a_container_that_is_no_web_host():
    """By the firewall (the connection is dropped), and by pg_hba.conf behind it."""
    assert startup(WEB[0]).startswith("R"), "the web host's login is not asked for its password"
    probe = "import socket; socket.create_connection(('fd-pg-db', 5432), timeout=3)"
    dropped = host(OTHER).run(f"python3 -c {shlex.quote(probe)}")
    assert dropped.rc != 0 and "timed out" in dropped.stderr, dropped.stderr
    ruleset = host(DB).check_output("nft list chain inet hardening input")
    assert "tcp dport 5432 accept" in ruleset and address(OTHER) not in ruleset, ruleset
    # The firewall opened for it a moment: PostgreSQL refuses it on its own.
    db = host(DB)
    db.check_output(f"nft insert rule inet hardening input ip saddr {address(OTHER)} tcp dport 5432 accept")
    try:
        refused = startup(OTHER)
    finally:
        db.check_output("nft -f /etc/nftables.conf")
    assert refused == f'E no pg_hba.conf entry for host "{address(OTHER)}", user "app", database "app", SSL encryption', refused
    assert address(OTHER) not in db.check_output("nft list chain inet hardening input")


def test_the_settings_are_sized_from_the_memory_given():
    settings = dict(line.split("|") for line in psql(
        "SELECT name, current_setting(name) FROM pg_settings WHERE name IN ('shared_buffers', 'effective_cache_size',"
        " 'maintenance_work_mem', 'work_mem', 'max_connections', 'log_statement', 'ssl', 'password_encryption',"
        " 'ssl_min_protocol_version')", database="postgres").splitlines())
    # 512 MB: a quarter (at least 128MB), three quarters, and the floors of 64MB and 4MB.
    assert settings == {"shared_buffers": "128MB", "effective_cache_size": "384MB", "maintenance_work_mem": "64MB",
                        "work_mem": "4MB", "max_connections": "100", "log_statement": "ddl", "ssl": "on",
                        "password_encryption": "scram-sha-256", "ssl_min_protocol_version": "TLSv1.2"}, settings
    assert psql("SELECT count(*) FROM pg_settings WHERE pending_restart", database="postgres") == "0"


@pytest.mark.parametrize("path, kind, mode, owner", [
    (BACKUPS, "directory", 0o700, "postgres"),
    ("/etc/postgresql/17/main/pg_hba.conf", "file", 0o640, "postgres"),
    ("/etc/postgresql/17/main/server.key", "file", 0o600, "postgres"),
])
def test_the_database_host_files_are_private(path, kind, mode, owner):
    f = host(DB).file(path)
    assert (f.is_directory if kind == "directory" else f.is_file) and f.mode == mode and f.user == owner


def test_the_database_host_is_hardened_and_says_what_could_not_apply():
    db = host(DB)
    assert db.service("nftables").is_enabled
    sshd = dict(line.split(" ", 1) for line in db.check_output("sshd -T").splitlines() if " " in line)
    assert sshd["permitrootlogin"] == "no" and sshd["allowusers"] == "deploy"
    skipped = json.loads(db.file("/etc/ansible/facts.d/hardening.fact").content_string)["skipped"]
    assert "sysctl" in [entry["item"] for entry in skipped]
