"""The full stack, judged from outside: HTTPS through nginx to the app and its database."""

import json
import os
import socket
import ssl
import subprocess

import httpx
import pytest

import conftest

APP = "/srv/app"


@pytest.fixture(scope="module")
def urls(host):
    name = host.backend.get_hostname()
    return {
        "https": f"https://localhost:{conftest.published_port(name, 443)}",
        "http": f"http://localhost:{conftest.published_port(name, 80)}",
        "https_port": conftest.published_port(name, 443),
    }


@pytest.fixture(scope="module")
def client(urls):
    with httpx.Client(base_url=urls["https"], verify=False, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def state(host):
    return conftest.serving(host, APP)


def release_manifest(host, release):
    return json.loads(host.file(f"{APP}/releases/{release}/RELEASE.json").content_string)


def app_command(host, command):
    """Run a command in the serving release as the app user, with the app's environment."""
    return host.run(
        f"cd {APP}/current && runuser -u app -- {APP}/bin/with-env {APP}/shared/.env sh -c '{command}'"
    )


def test_health_through_nginx_reports_the_serving_release(client, state, host):
    response = client.get("/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["release"] == state["release"]
    manifest = release_manifest(host, state["release"])
    python = conftest.TESTBED_PYTHON[conftest.debian_major(host)]
    assert manifest["python"].endswith(f"/{python}/bin/python3")
    assert body["python"] == python
    assert body["database_revision"] == manifest["alembic_head"]


def test_api_round_trips_through_the_database(client):
    created = client.post("/items", json={"name": "round-trip", "description": "via nginx"})
    assert created.status_code == 201, created.text
    item_id = created.json()["id"]
    fetched = client.get(f"/items/{item_id}")
    assert fetched.status_code == 200
    assert fetched.json()["description"] == "via nginx"


def test_alembic_is_at_head(host):
    manifest = json.loads(host.file(f"{APP}/current/RELEASE.json").content_string)
    cmd = app_command(host, f"{manifest['venv']}/bin/alembic current")
    assert cmd.rc == 0, cmd.stderr
    assert f"{manifest['alembic_head']} (head)" in cmd.stdout


def test_http_redirects_to_https(urls):
    response = httpx.get(urls["http"] + "/items?x=1", follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["location"] == "https://localhost/items?x=1"


def test_security_headers(client):
    headers = client.get("/health").headers
    hsts = headers["strict-transport-security"]
    max_age = int(hsts.split("max-age=")[1].split(";")[0])
    assert max_age >= 365 * 24 * 3600
    assert headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors" in headers["content-security-policy"] or "x-frame-options" in headers
    assert headers["referrer-policy"]
    assert "server" not in headers or "/" not in headers["server"], "nginx version leaked"


def test_nginx_accepts_its_configuration_without_a_warning(host):
    result = host.run("nginx -t")
    assert result.rc == 0, result.stderr
    assert "[warn]" not in result.stderr and "deprecated" not in result.stderr, result.stderr


def test_http2_is_negotiated(urls):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", urls["https_port"]), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() == "h2"


def test_unknown_hosts_are_refused(urls):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", urls["https_port"]), timeout=5) as raw:
        with pytest.raises(ssl.SSLError):
            with context.wrap_socket(raw, server_hostname="not-ours.example"):
                pass
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(urls["http"] + "/", headers={"Host": "not-ours.example"})


def test_static_files_are_served_by_nginx(client):
    response = client.get("/static/robots.txt")
    assert response.status_code == 200
    assert "expires" in response.headers


def test_static_files_never_include_dot_files_or_symlinks(client, host, state):
    static = f"{APP}/releases/{state['release']}/static"
    host.run(f"echo secret > {static}/.env && ln -sf /etc/passwd {static}/passwd.txt")
    try:
        assert client.get("/static/.env").status_code == 404
        assert client.get("/static/passwd.txt").status_code in (403, 404)
        assert "root:" not in client.get("/static/passwd.txt").text
    finally:
        host.run(f"rm -f {static}/.env {static}/passwd.txt")


def test_tls_is_mozilla_intermediate_compliant(urls):
    ca = f"{os.environ['MOLECULE_PROJECT_DIRECTORY']}/.cache/fixtures/scenarios/{os.environ['MOLECULE_SCENARIO_NAME']}/tls/ca.crt"
    result = subprocess.run(
        ["sslyze", "--mozilla_config=intermediate", f"--certinfo_ca_file={ca}", f"localhost:{urls['https_port']}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # sslyze can exit 0 on a usage error: read its verdict line.
    verdict = f"localhost:{urls['https_port']}: OK - Compliant."
    assert verdict in result.stdout, result.stdout[-3000:]


def test_services_run_and_start_at_boot(host):
    for service in ("nginx", "supervisor"):
        assert host.service(service).is_running
        assert host.service(service).is_enabled


def test_gunicorn_runs_as_the_app_user_without_a_login_shell(host, state):
    masters = host.process.filter(comm="gunicorn")
    assert masters, "no gunicorn process"
    assert {p.user for p in masters} == {"app"}
    assert host.user("app").shell == "/usr/sbin/nologin"
    status = host.run("supervisorctl status").stdout
    assert f"app-{state['slot']}" in status and "RUNNING" in status


def test_environment_file_is_private_and_not_the_apps_to_change(host):
    env = host.file(f"{APP}/shared/.env")
    assert env.is_symlink
    target = host.file(env.linked_to)
    assert (target.user, target.group, target.mode) == ("root", "app", 0o640)
    assert target.contains("DATABASE_URL=")
    assert host.run(f"runuser -u app -- sh -c 'echo X=1 >> {env.linked_to}'").rc != 0


def test_code_is_not_writable_by_the_app(host, state):
    release = host.file(f"{APP}/releases/{state['release']}")
    assert release.user == "root"
    cmd = host.run(f"runuser -u app -- touch {APP}/current/app/main.py")
    assert cmd.rc != 0


def test_redeploy_kept_data_backed_up_and_reused_the_venv(host, client, state):
    """side_effect.yml wrote an item, pushed a new migration and redeployed."""
    releases = sorted(host.file(f"{APP}/releases").listdir())
    assert len(releases) == 2, releases
    first, second = (release_manifest(host, r) for r in releases)
    assert state["release"] == second["id"]
    assert second["alembic_head"] == "0003_item_tags"
    assert first["alembic_head"] == "0002_item_description"
    # Requirements did not change: the venv was reused, not rebuilt.
    assert first["venv"] == second["venv"]
    assert host.file(f"{APP}/venvs").listdir() == [second["venv"].rsplit("/", 1)[1]]
    # Data written before the redeploy survived it.
    names = [item["name"] for item in client.get("/items").json()]
    assert "written-before-redeploy" in names
    # The database was backed up before the migration.
    backups = host.file(f"{APP}/shared/backups").listdir()
    assert backups == [f"app.db.{second['id']}.bak"]


def test_the_app_user_can_write_only_what_the_role_documents(host):
    """Least privilege: nothing a later start of any process trusts is the app user's to write."""
    assert conftest.undocumented_app_writable(host) == []
    # And what it writes is not for other users: no backup or database is world-readable.
    exposed = host.check_output("find /srv/app/shared -perm -o=r -type f 2>/dev/null || true")
    assert exposed == "", exposed
