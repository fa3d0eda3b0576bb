"""Certificates from an ACME CA (Pebble), judged from outside, on both web hosts.

Pebble's mock DNS answers every name with web1's address, as a load balancer would send
every client to one host: web1's own challenges are answered from its webroot, web2's are
passed on by web1's challenge proxy. The tests run in this order and share one converge:
what was issued, that the second converge asked the CA nothing, the challenge proxy,
a renewal by certbot.timer's own unit under load, a name change, the refusals, and last
(it stops Pebble, whose state is in memory) a renewal that fails.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import testinfra
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

import conftest
from conftest import ansible_playbook, failure_message, host_state, recap, said
from load import Load

WEB = ["fd-acme-web1", "fd-acme-web2"]
NAME = "app.example.test"
# web1's second app (test_two_apps.py): its own certificate, for its own name.
ADMIN_NAME = "admin.example.test"
# Every certificate of the scenario: (container, name).
CERTIFICATES = [(c, NAME) for c in WEB] + [(WEB[0], ADMIN_NAME)]
DIRECTORY = "https://fd-acme-pebble:14000/dir"
LIVE = "/etc/letsencrypt/live/app"
# A renewal now, through certbot.timer's own unit (a runtime drop-in: gone at reboot).
FORCE = "/run/systemd/system/certbot.service.d/50-force.conf"


@pytest.fixture(scope="module")
def pebble():
    return testinfra.get_host("podman://fd-acme-pebble")


@pytest.fixture(scope="module")
def web():
    return {name: testinfra.get_host(f"podman://{name}") for name in WEB}


@pytest.fixture(scope="module")
def root_ca(pebble, tmp_path_factory) -> Path:
    """Pebble's root (made at its start, never restarted since): what a client trusts."""
    path = tmp_path_factory.mktemp("pebble") / "root.pem"
    path.write_text(pebble_get(pebble, "/roots/0"))
    return path


def pebble_get(pebble, path: str) -> str:
    return pebble.check_output(f"curl -fsS --cacert /etc/pebble/listener-ca.pem https://localhost:15000{path}")


def pebble_log(pebble) -> str:
    return pebble.check_output("journalctl -u pebble -o cat --no-pager")


def orders(pebble) -> int:
    return pebble_log(pebble).count("Added order")


def issued_serials(pebble) -> list[int]:
    return [int(s, 16) for s in re.findall(r"Issued certificate serial ([0-9a-f]+)", pebble_log(pebble))]


def served_chain(container: str, name: str = NAME) -> list[x509.Certificate]:
    """The chain nginx sends for this name (TLS SNI), through the host's published port."""
    port = conftest.published_port(container, 443)
    out = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name, "-showcerts"],
        input="", capture_output=True, text=True, timeout=30,
    ).stdout
    return x509.load_pem_x509_certificates(out.encode()) if "BEGIN CERTIFICATE" in out else []


def names_of(cert: x509.Certificate) -> list[str]:
    return sorted(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))


def common_name(name: x509.Name) -> str:
    return name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def serial(container: str, name: str = NAME) -> str:
    return format(served_chain(container, name)[0].serial_number, "X")


def new_serial(container: str, old: str, name: str = NAME) -> str:
    """The serial served once nginx's new workers answer (a reload is a signal: its
    workers start a moment after systemctl returns)."""
    deadline = time.monotonic() + 10
    while (found := serial(container, name)) == old and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


def health(container: str) -> httpx.Response:
    """/health through nginx, asked by the site's name (TLS SNI and Host) on the published port."""
    port = conftest.published_port(container, 443)
    with httpx.Client(verify=False, timeout=10) as client:
        return client.get(f"https://127.0.0.1:{port}/health", headers={"Host": NAME}, extensions={"sni_hostname": NAME})


def test_each_host_serves_its_own_certificate_from_pebble_for_its_name(pebble, root_ca, tmp_path):
    intermediate = x509.load_pem_x509_certificate(pebble_get(pebble, "/intermediates/0").encode())
    leaves = {}
    for container in WEB:
        chain = served_chain(container)
        assert len(chain) == 2, f"{container}: {len(chain)} certificates served"
        leaf, sent_intermediate = chain
        assert names_of(leaf) == [NAME]
        assert sent_intermediate == intermediate
        assert leaf.issuer == intermediate.subject
        assert common_name(leaf.issuer).startswith("Pebble Intermediate CA")
        # Pebble's 90 days, not the self-signed certificate's year.
        lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        assert 89 <= lifetime.days <= 90, lifetime
        (tmp_path / "leaf.pem").write_text(leaf.public_bytes(Encoding.PEM).decode())
        (tmp_path / "chain.pem").write_text(sent_intermediate.public_bytes(Encoding.PEM).decode())
        verified = subprocess.run(["openssl", "verify", "-CAfile", str(root_ca), "-untrusted", str(tmp_path / "chain.pem"),
                                   str(tmp_path / "leaf.pem")], capture_output=True, text=True)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        leaves[container] = leaf
        print(f"\n{container}: serial {format(leaf.serial_number, 'X')}, issued by {common_name(leaf.issuer)}, "
              f"for {', '.join(names_of(leaf))}, until {leaf.not_valid_after_utc:%Y-%m-%d}")
    # Each host got its own certificate and key (no shared secrets between hosts).
    first, second = leaves.values()
    assert first.serial_number != second.serial_number
    assert first.public_key() != second.public_key()


def test_sslyze_finds_both_hosts_compliant_with_mozillas_intermediate_profile(root_ca):
    targets = [f"{NAME}:{conftest.published_port(c, 443)}{{127.0.0.1}}" for c in WEB]
    result = subprocess.run(["sslyze", "--mozilla_config=intermediate", f"--certinfo_ca_file={root_ca}", *targets],
                            capture_output=True, text=True, timeout=300)
    for container in WEB:
        assert f"{NAME}:{conftest.published_port(container, 443)}: OK - Compliant." in result.stdout, result.stdout[-3000:]
    assert "Certificate is trusted" in result.stdout, result.stdout[-3000:]


def test_one_order_per_certificate_and_none_from_the_second_converge(pebble):
    """Right after converge and idempotence: one order for each site of each host (web1
    has two apps), each serving the certificate of its order; the second converge asked
    the CA for nothing."""
    log = pebble_log(pebble)
    assert orders(pebble) == len(CERTIFICATES), "\n".join(line for line in log.splitlines() if "order" in line.lower())
    served = {(c, name): served_chain(c, name)[0].serial_number for c, name in CERTIFICATES}
    assert sorted(served.values()) == sorted(issued_serials(pebble))
    print(f"\nPebble: {len(CERTIFICATES)} orders, issued serials {[format(s, 'X') for s in issued_serials(pebble)]}")


def test_keys_are_root_only_and_renewal_runs_on_the_host(web):
    for container, host in web.items():
        links = host.check_output("readlink /etc/nginx/tls/app.crt /etc/nginx/tls/app.key").splitlines()
        assert links == [f"{LIVE}/fullchain.pem", f"{LIVE}/privkey.pem"], links
        modes = host.check_output(
            "stat -L -c '%n %a %U %G' /etc/nginx/tls/app.key /etc/letsencrypt/archive/app/privkey*.pem"
            " /etc/nginx/tls /etc/letsencrypt/live /etc/letsencrypt/archive /etc/letsencrypt/renewal-hooks/deploy/nginx-app"
            " && find /etc/letsencrypt/accounts -name private_key.json -printf '%p %m %u %g\\n'").splitlines()
        keys = [line for line in modes if "privkey" in line or line.startswith(("/etc/nginx/tls/app.key", "/etc/letsencrypt/accounts"))]
        assert len(keys) >= 3 and all(line.endswith((" 600 root root", " 400 root root")) for line in keys), modes
        assert all(line.endswith(" 700 root root") for line in modes if line.split()[0] in
                   ("/etc/nginx/tls", "/etc/letsencrypt/live", "/etc/letsencrypt/archive")), modes
        assert "/etc/letsencrypt/renewal-hooks/deploy/nginx-app 755 root root" in modes, modes
        # Debian's timer, enabled; the private CA reaches its renewals through a drop-in.
        timer = host.check_output("systemctl is-enabled certbot.timer; systemctl is-active certbot.timer").split()
        assert timer == ["enabled", "active"], timer
        unit = host.check_output("systemctl cat certbot.service; cat /etc/letsencrypt/renewal/app.conf; nginx -t 2>&1")
        assert "Environment=REQUESTS_CA_BUNDLE=/etc/letsencrypt/acme-ca.pem" in unit, unit
        assert f"server = {DIRECTORY}" in unit and "authenticator = webroot" in unit, unit
        assert "test is successful" in unit, unit


def test_port_80_answers_challenges_for_its_peer_once_and_redirects_the_rest(web):
    """A token only web2 has, asked of web1 (where every name resolves): passed on once."""
    web1, web2 = web[WEB[0]], web[WEB[1]]
    url = f"http://127.0.0.1:{conftest.published_port(WEB[0], 80)}"
    token = "/.well-known/acme-challenge/fd-test-token"
    web2.check_output(f"mkdir -p /var/lib/letsencrypt/webroot{token.rsplit('/', 1)[0]}")
    web2.check_output(f"echo web2-has-it > /var/lib/letsencrypt/webroot{token}")
    try:
        proxied = httpx.get(url + token, headers={"Host": NAME}, timeout=10)
        assert (proxied.status_code, proxied.text) == (200, "web2-has-it\n")
        # A request that already came from a peer is not passed on again.
        guarded = httpx.get(url + token, headers={"Host": NAME, "X-Acme-Peer": "1"}, timeout=10)
        assert guarded.status_code == 404
        missing = httpx.get(url + "/.well-known/acme-challenge/nobody-has-it", headers={"Host": NAME}, timeout=10)
        assert missing.status_code == 404
        other = httpx.get(url + "/items?x=1", headers={"Host": NAME}, timeout=10)
        assert (other.status_code, other.headers["location"]) == (301, f"https://{NAME}/items?x=1")
    finally:
        web2.run("rm -rf /var/lib/letsencrypt/webroot/.well-known")
    # web2's issuance went the same way: Pebble's checks reached web2 from web1.
    web1_address = web2.check_output("getent hosts fd-acme-web1").split()[0]
    log = web2.check_output("cat /var/log/nginx/access.log")
    assert any(line.startswith(web1_address + " ") and "LetsEncrypt-Pebble-VA" in line for line in log.splitlines()), log[-2000:]
    assert web1.run("nginx -t").rc == 0


def force_renewal(host) -> subprocess.CompletedProcess:
    """Start certbot.service as certbot.timer does, with --force-renewal."""
    host.check_output(f"mkdir -p {FORCE.rsplit('/', 1)[0]} && printf '%s\\n' '[Service]' 'ExecStart=' "
                      f"'ExecStart=/usr/bin/certbot -q renew --force-renewal --no-random-sleep-on-renew' > {FORCE}"
                      " && systemctl daemon-reload")
    try:
        return host.run("systemctl start certbot.service")
    finally:
        host.check_output(f"rm -f {FORCE} && systemctl daemon-reload")


def test_a_renewal_by_the_timers_unit_is_served_after_a_graceful_reload_under_load(web, pebble):
    before = {c: serial(c) for c in WEB}
    orders_before = orders(pebble)
    since = {c: web[c].check_output("date +%s") for c in WEB}
    # Keep-alive clients that send a request again when nginx closed their idle connection
    # unanswered, as browsers and curl do (the reload closes idle connections; load.py).
    loads = {c: Load(f"https://127.0.0.1:{conftest.published_port(c, 443)}/health", clients=4, seconds=120,
                     requests=20_000, rate=25, server_name=NAME, retry_closed=True).start() for c in WEB}
    try:
        runs = {c: force_renewal(web[c]) for c in WEB}
    finally:
        results = {c: load.stop() for c, load in loads.items()}
    for container in WEB:
        host = web[container]
        run = runs[container]
        assert run.rc == 0, run.stderr + host.run("journalctl -u certbot.service -n 30 --no-pager").stdout
        assert host.check_output("systemctl show -P Result certbot.service") == "success"
        after = new_serial(container, before[container])
        hook = host.check_output(f"journalctl -t certbot-deploy-hook --since @{since[container]} -o cat --no-pager")
        print(f"\n{container}: renewed by certbot.service, served serial {before[container]} -> {after}; "
              f"under load: {results[container].summary()}\n  deploy hook: {' | '.join(hook.splitlines())}")
        assert after != before[container]
        assert f"certificate renewed: {LIVE}" in hook and "nginx reloaded gracefully onto the renewed certificate" in hook, hook
        assert results[container].sent > 100
        assert results[container].failed == 0, results[container].summary()
    # One new order per certificate (web1 renewed its second app's too): once each.
    assert orders(pebble) == orders_before + len(CERTIFICATES)


def test_the_deploy_hook_leaves_a_configuration_nginx_rejects_unloaded_and_says_so(web):
    """After a renewal with a broken nginx configuration (not the role's: a file dropped in
    conf.d), the hook logs nginx -t's error at priority err and exits non-zero; nginx keeps
    serving."""
    container = WEB[1]
    host = web[container]
    since = host.check_output("date +%s")
    host.check_output("echo 'fd_test_bogus_directive on;' > /etc/nginx/conf.d/fd-test-broken.conf")
    try:
        run = host.run(f"RENEWED_LINEAGE={LIVE} RENEWED_DOMAINS={NAME} /etc/letsencrypt/renewal-hooks/deploy/nginx-app")
    finally:
        host.check_output("rm -f /etc/nginx/conf.d/fd-test-broken.conf")
    errors = host.check_output(f"journalctl -t certbot-deploy-hook -p err --since @{since} -o cat --no-pager")
    print(f"\n{container}: deploy hook with a broken configuration: exit {run.rc}; at priority err: "
          + " | ".join(errors.splitlines()))
    assert run.rc == 1
    assert "nginx -t failed, nginx keeps serving the previous certificate" in errors, errors
    assert 'unknown directive "fd_test_bogus_directive"' in errors, errors
    assert health(container).status_code == 200


def test_a_changed_name_list_gets_a_new_certificate(pebble):
    """web1 alone, nginx only: one name more, one new order, both names served."""
    container = WEB[0]
    before, orders_before = serial(container), orders(pebble)
    names = [NAME, "www.example.test"]
    result = ansible_playbook("deploy.yml", os.environ["MOLECULE_INVENTORY_FILE"], "--tags", "nginx",
                              "--limit", container, "-e", json.dumps({"nginx_server_names": names}))
    assert result.returncode == 0, result.stdout[-3000:]
    after = new_serial(container, before)
    assert orders(pebble) == orders_before + 1
    for name in names:
        leaf = served_chain(container, name)[0]
        assert format(leaf.serial_number, "X") == after != before
        assert names_of(leaf) == sorted(names), name
    print(f"\n{container}: names {names}: serial {before} -> {after}, one new order")


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    """The scenario's inventory for web1 alone, its web group variables replaced by the test's."""
    source = yaml.safe_load(Path(os.environ["MOLECULE_INVENTORY_FILE"]).read_text())
    hostvars = source["all"]["hosts"][WEB[0]]

    def write(group_vars: dict) -> Path:
        path = tmp_path_factory.mktemp("inventory") / "hosts.yml"
        path.write_text(yaml.safe_dump({"web": {"hosts": {WEB[0]: hostvars}, "vars": group_vars}}))
        return path

    return write


# Every ACME mistake at once: one run reports them all, a line each, before any change.
# (Each rule alone, localhost and wildcards included: tests/test_check_inputs.py.)
MISTAKES = {"nginx_server_names": [NAME, "10.89.0.9"], "nginx_tls_acme_email": "",
            "nginx_tls_acme_directory_url": "http://fd-acme-pebble:14000/dir", "nginx_tls_acme_staging": True,
            "nginx_tls_acme_peers": ["fd-acme-web2"]}
SAYS = ["5 bad inputs, nothing was changed",
        f'- nginx_server_names: got ["{NAME}", "10.89.0.9"]; expected names an ACME CA can check over HTTP-01',
        "without IP addresses, localhost or wildcards: not 10.89.0.9",
        "- nginx_tls_acme_email: got ''; expected the e-mail address of the ACME account",
        "- nginx_tls_acme_directory_url: got 'http://fd-acme-pebble:14000/dir'; expected an https:// URL",
        "- nginx_tls_acme_staging: got true; expected false when nginx_tls_acme_directory_url is set",
        '- nginx_tls_acme_peers: got ["fd-acme-web2"]; expected IP addresses of the other web hosts']


def test_acme_mistakes_are_refused_before_any_change_naming_each_variable(inventory, scenario_vars, web, pebble):
    host = web[WEB[0]]
    state, orders_before = host_state(host), orders(pebble)
    result = ansible_playbook("deploy.yml", inventory({**scenario_vars, **MISTAKES}))
    assert result.returncode != 0, result.stdout[-3000:]
    text = said(result)
    for words in SAYS:
        assert words in text, result.stdout[-3000:]
    message = failure_message(result)
    assert len(message) < 15, "\n".join(message)
    assert recap(result)["changed"] == 0
    assert host_state(host) == state
    assert orders(pebble) == orders_before
    print("\n" + "\n".join(message))


def test_a_renewal_that_fails_leaves_the_old_certificate_serving_and_the_unit_failed(web, pebble):
    """Last: Pebble stopped (its state is in memory; it is not started again)."""
    pebble.check_output("systemctl stop pebble")
    for container in WEB:
        host = web[container]
        before = serial(container)
        run = force_renewal(host)
        assert run.rc != 0
        assert host.run("systemctl is-failed certbot.service").stdout.strip() == "failed"
        assert host.check_output("systemctl show -P ExecMainStatus certbot.service") == "1"
        journal = host.check_output("journalctl -o cat --no-pager _SYSTEMD_INVOCATION_ID="
                                    "$(systemctl show -P InvocationID certbot.service)")
        assert "Failed to renew certificate app" in journal, journal
        assert serial(container) == before
        assert health(container).status_code == 200
        print(f"\n{container}: CA down, certbot.service failed (status 1), still serving serial {before}; journal: "
              + " | ".join(journal.splitlines()))
