"""A deploy repairs what drifted on the host: the probe sees it, the usual modules fix it."""

import os

import httpx

import conftest
from conftest import recap, serving

APP = "/srv/app"
SITE = "/etc/nginx/sites-enabled/app.conf"


def test_a_deploy_repairs_drift_and_a_second_one_changes_nothing(host, https):
    before = serving(host)
    site = host.file(SITE).content_string
    env_file = host.check_output(f"readlink -f {APP}/shared/.env")
    # An operator's edits by hand: a line in nginx's site, a world-readable environment
    # file, logs opened to everyone, nginx stopped.
    host.run_expect([0], f"echo '# edited by hand' >> {SITE}")
    host.run_expect([0], f"chmod 0644 {env_file}")
    host.run_expect([0], "chmod 0755 /var/log/nginx")
    host.run_expect([0], "systemctl stop nginx")

    result = conftest.ansible_playbook("deploy.yml", os.environ["MOLECULE_INVENTORY_FILE"])
    assert result.returncode == 0, result.stdout[-3000:]
    counts = recap(result)
    print(f"\nrepairing 4 drifts: changed={counts['changed']}")
    assert counts["changed"] >= 4, result.stdout[-3000:]

    assert host.file(SITE).content_string == site
    assert host.file(env_file).mode == 0o640
    assert host.file("/var/log/nginx").mode == 0o750
    assert host.service("nginx").is_running
    # The same release serves; nothing was redeployed to repair the host.
    assert serving(host) == before
    assert httpx.get(f"{https}/health", verify=False, timeout=10).json()["release"] == before["release"]

    again = conftest.ansible_playbook("deploy.yml", os.environ["MOLECULE_INVENTORY_FILE"])
    assert again.returncode == 0, again.stdout[-3000:]
    assert recap(again)["changed"] == 0, again.stdout[-3000:]
