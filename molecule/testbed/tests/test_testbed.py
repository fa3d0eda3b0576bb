"""The test bed works: systemd, HTTPS out through the site's CA, the app fixture clonable."""

import conftest


def test_systemd_is_pid_1_and_running(host):
    assert host.process.get(pid=1).comm == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    assert state == "running", host.run("systemctl --failed --no-legend").stdout


def test_https_to_the_package_index(host):
    cmd = host.run("curl -fsS -o /dev/null -w '%{http_code}' https://pypi.org/simple/pip/")
    assert cmd.rc == 0, cmd.stderr
    assert cmd.stdout == "200"


def test_app_repository_clones_from_the_fixtures(host):
    cmd = host.run("rm -rf /tmp/clone && git clone -q file:///opt/fixtures/app.git /tmp/clone")
    assert cmd.rc == 0, cmd.stderr
    assert host.file("/tmp/clone/requirements.txt").contains("fastapi")
    assert host.file("/tmp/clone/alembic.ini").exists


def test_ports_are_published_on_loopback_only(host):
    name = host.backend.get_hostname()
    assert conftest.published_port(name, 443) > 0
