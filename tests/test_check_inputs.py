"""fastapi_deploy.stack.check_inputs: strict types, every bad variable at once, in few lines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.fastapi_deploy.stack.plugins.action.check_inputs import (  # noqa: E402
    check_option,
    format_report,
    unknown_inputs,
)


def errors_of(spec, value):
    found = []
    check_option("x", spec, value, found)
    return found


def test_a_list_or_a_mapping_is_no_string():
    assert errors_of({"type": "str"}, ["main", "dev"]) == [("x", 'got a list (["main", "dev"]); expected a string')]
    assert errors_of({"type": "str"}, {"a": 1})[0][1].startswith("got a mapping")
    assert errors_of({"type": "str"}, 1.0) == [("x", "got a number (1.0); expected a string")]
    assert errors_of({"type": "str"}, "main") == []


def test_numbers_and_booleans_accept_what_extra_vars_give():
    assert errors_of({"type": "int"}, "8") == [] and errors_of({"type": "int"}, 8) == []
    assert errors_of({"type": "int"}, "eight")[0][1] == "got a string ('eight'); expected an integer"
    assert errors_of({"type": "int"}, True) != []
    assert errors_of({"type": "bool"}, "yes") == [] and errors_of({"type": "bool"}, "maybe") != []
    assert errors_of({"type": "float"}, "0.5") == [] and errors_of({"type": "float"}, [1]) != []


def test_elements_choices_and_secrets():
    assert errors_of({"type": "list", "elements": "str"}, ["a", ["b"]]) == [("x[1]", 'got a list (["b"]); expected a string')]
    assert errors_of({"type": "str", "choices": ["a", "b"]}, "c") == [("x", "got 'c'; expected one of a, b")]
    assert "hunter2" not in errors_of({"type": "str", "no_log": True}, ["hunter2"])[0][1]


def test_a_typo_is_named_with_the_closest_variable():
    found = unknown_inputs({"app_repository", "app_repo", "ansible_host", "nginx_x"}, {"app_repo"}, {"app_"})
    assert found == [("app_repository", "is not a variable of any role here (a typo?); did you mean app_repo?")]


def test_the_report_is_a_line_per_input():
    report = format_report([(f"v{i}", "bad") for i in range(20)])
    assert report.splitlines()[0] == "20 bad inputs, nothing was changed:"
    assert len(report.splitlines()) == 14


WEB_ROLES = ("hardening", "base", "python", "supervisor", "nginx", "app")
DB_ROLES = ("hardening", "base", "postgresql")


def run_preflights(tmp_path, group_vars, roles=WEB_ROLES, *extra):
    """Every role's preflight, then the report, as deploy.yml runs them, on the controller itself."""
    playbook = tmp_path / "preflight.yml"
    tasks = [{"name": f"Check {r}", "ansible.builtin.import_role": {"name": r, "tasks_from": "preflight"}} for r in roles]
    tasks.append({"name": "Report every bad input of the run", "fastapi_deploy.stack.check_inputs": {}})
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False,
        "vars": {"check_inputs_collect": True, "app_python": "/opt/pyenv/versions/3.13.13/bin/python3", **group_vars},
        "tasks": tasks}]))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", f"ansible_python_interpreter={sys.executable}", *extra, str(playbook)], cwd=ROOT,
                          capture_output=True, text=True, env=env, timeout=300)


def test_the_defaults_pass_every_rule(tmp_path):
    """A rule that cannot pass would refuse every deploy: the defaults and a repo are good input."""
    result = run_preflights(tmp_path, {"app_repo": "https://git.example.com/app.git",
                                       "app_env": {"DATABASE_URL": "sqlite+aiosqlite:////srv/app/shared/data/app.db"}})
    assert result.returncode == 0, result.stdout[-3000:]


def test_every_bad_input_of_the_run_is_reported_at_once(tmp_path):
    result = run_preflights(tmp_path, {"app_repo": ["https://git.example.com/app.git"], "app_version": "a b",
                                       "nginx_server_names": ["local host"], "hardening_ssh_port": 70000,
                                       "python_version": "3.13", "app_env": {"1X": "y"}, "nginx_site_nmae": "x"})
    assert result.returncode != 0
    text = " ".join(result.stdout.split())
    assert "7 bad inputs, nothing was changed:" in text, result.stdout[-3000:]
    for name in ("app_repo", "app_version", "nginx_server_names", "hardening_ssh_port", "python_version", "app_env",
                 "nginx_site_nmae"):
        assert f"- {name}: " in text, (name, result.stdout[-3000:])
    assert "did you mean nginx_site_name?" in text


GOOD = {"app_repo": "https://git.example.com/app.git",
        "app_env": {"DATABASE_URL": "sqlite+aiosqlite:////srv/app/shared/data/app.db"}}
ACME = {**GOOD, "nginx_tls_acme": True, "nginx_tls_acme_email": "admin@example.com",
        "nginx_server_names": ["app.example.com", "www.example.com"]}
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_acme_with_staging_a_private_ca_and_peers_of_either_family_passes(tmp_path):
    result = run_preflights(tmp_path, {**ACME, "nginx_tls_acme_staging": True, "nginx_tls_acme_ca_certificate": PEM,
                                       "nginx_tls_acme_peers": ["10.0.0.2", "fd00::2"]})
    assert result.returncode == 0, result.stdout[-3000:]


def test_every_acme_mistake_is_named_at_once(tmp_path):
    """What an ACME CA (or certbot) would refuse, each line naming its variable."""
    result = run_preflights(tmp_path, {
        **ACME,
        "nginx_server_names": ["app.example.com", "192.0.2.1", "localhost", "www.LOCALHOST", "*.example.com"],
        "nginx_tls_acme_email": "", "nginx_tls_acme_directory_url": "http://ca.example.com/acme/directory",
        "nginx_tls_acme_staging": True, "nginx_tls_acme_ca_certificate": "ca.pem",
        "nginx_tls_acme_peers": ["10.0.0.2", "web2.example.com"],
        "nginx_tls_certificate": PEM, "nginx_tls_certificate_key": "(a key)"})
    assert result.returncode != 0
    text = " ".join(result.stdout.split())
    for line in [
        "7 bad inputs, nothing was changed:",
        "- nginx_tls_acme: got true; expected false while nginx_tls_certificate is given",
        "expected names an ACME CA can check over HTTP-01 (nginx_tls_acme is on), without IP addresses, localhost or "
        "wildcards: not 192.0.2.1, localhost, www.LOCALHOST, *.example.com",
        "- nginx_tls_acme_email: got ''; expected the e-mail address of the ACME account (required when nginx_tls_acme is on)",
        "- nginx_tls_acme_directory_url: got 'http://ca.example.com/acme/directory'; expected an https:// URL",
        "- nginx_tls_acme_staging: got true; expected false when nginx_tls_acme_directory_url is set",
        "- nginx_tls_acme_ca_certificate: got 'ca.pem'; expected a PEM certificate",
        '- nginx_tls_acme_peers: got ["10.0.0.2", "web2.example.com"]; expected IP addresses',
    ]:
        assert line in text, (line, result.stdout[-3000:])
    # The key is never shown.
    assert "(a key)" not in result.stdout


def vaulted_password(tmp_path, password="a-good-long-password"):
    """A password file encrypted with ansible-vault, as the unvault lookup reads it; the vault password file."""
    vault_pass = tmp_path / "vault-pass"
    vault_pass.write_text("test\n")
    secret = tmp_path / "db-password.vault"
    secret.write_text(password)
    subprocess.run([str(Path(sys.executable).parent / "ansible-vault"), "encrypt", "--vault-password-file",
                    str(vault_pass), str(secret)], check=True, capture_output=True)
    return "{{ lookup('ansible.builtin.unvault', '%s') }}" % secret, f"--vault-password-file={vault_pass}"


DB_VARS = {"postgresql_listen_addresses": ["localhost", "10.0.0.5"], "postgresql_allowed_clients": ["10.0.0.0/24"]}


def test_the_database_host_passes_with_a_password_from_vault(tmp_path):
    password, vault = vaulted_password(tmp_path)
    result = run_preflights(tmp_path, {**DB_VARS, "postgresql_password": password}, DB_ROLES, vault)
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_database_host_refuses_plain_text_passwords_and_bad_names_at_once(tmp_path):
    result = run_preflights(tmp_path, {**DB_VARS, "postgresql_password": "plain-text-password", "postgresql_user": "app-user",
                                       "postgresql_allowed_clients": ["web1.example.com"], "postgresql_setings": {}},
                            DB_ROLES)
    assert result.returncode != 0
    text = " ".join(result.stdout.split())
    assert "4 bad inputs, nothing was changed:" in text, result.stdout[-3000:]
    assert "- postgresql_password: expected a value from ansible-vault" in text, text[-3000:]
    assert "plain-text-password" not in result.stdout
    assert "- postgresql_user: got 'app-user'; expected an SQL identifier" in text, text[-3000:]
    assert "- postgresql_allowed_clients: got [\"web1.example.com\"]; expected IP addresses or CIDR ranges" in text, text[-3000:]
    assert "did you mean postgresql_settings?" in text


def test_without_network_facts_or_web_hosts_the_clients_must_be_given(tmp_path):
    password, vault = vaulted_password(tmp_path)
    result = run_preflights(tmp_path, {"postgresql_password": password}, DB_ROLES, vault)
    assert result.returncode != 0
    text = " ".join(result.stdout.split())
    assert "- postgresql_listen_addresses: got []; expected addresses to listen on" in text, text[-3000:]
    assert "- postgresql_allowed_clients: got []; expected the clients' addresses" in text, text[-3000:]
    assert "but there is no web group" in text


def test_a_check_run_again_later_is_skipped_but_a_roles_other_checks_are_not(tmp_path):
    """deploy.yml runs each preflight before the first change, and the roles run theirs
    again later; only the same check (task) of the same role is skipped the second time."""
    role = tmp_path / "roles" / "demo"
    (role / "tasks").mkdir(parents=True)
    (role / "tasks" / "preflight.yml").write_text(yaml.safe_dump([
        {"name": "Check the demo variables", "fastapi_deploy.stack.check_inputs": {"spec": False, "report": False}},
        {"name": "Check demo_ref", "fastapi_deploy.stack.check_inputs": {"spec": False, "report": False, "rules": [
            {"var": "demo_ref", "that": "demo_ref is match('^v')", "expect": "a tag starting with v"}]}},
    ]))
    playbook = tmp_path / "twice.yml"
    imported = {"ansible.builtin.import_role": {"name": "demo", "tasks_from": "preflight"}}
    playbook.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False, "vars": {"demo_ref": "main"},
        "tasks": [{"name": "First", **imported}, {"name": "Again", **imported},
                  {"name": "Report", "fastapi_deploy.stack.check_inputs": {}}]}]))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_ROLES_PATH": str(tmp_path / "roles")}
    result = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                             "-e", f"ansible_python_interpreter={sys.executable}", "-v", str(playbook)], cwd=ROOT,
                            capture_output=True, text=True, env=env, timeout=300)
    text = " ".join(result.stdout.split())
    assert result.returncode != 0, result.stdout[-3000:]
    assert "1 bad input, nothing was changed: - demo_ref: got 'main'; expected a tag starting with v" in text, text[-3000:]
    assert text.count("demo: Check demo_ref: checked earlier in this run") == 1, text[-3000:]
    assert text.count("demo: Check the demo variables: checked earlier in this run") == 1, text[-3000:]
