"""fastapi_deploy.stack's `rendered` lookup gives exactly what `ansible.builtin.template` writes.

The roles' probes compare a host's files with the lookup's output: a difference would make
every run rewrite the file (and restart what reads it), so this is checked against the real
template task, on the ansible-core this repository pins.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

TEMPLATE = r"""{{ ansible_managed | comment }}
[program:{{ program }}]
{% for key, value in settings | dictsort %}
{{ key }} = {{ value }}
{% endfor %}
command = {{ "printf 'a\\tb\\n'" }} {{ command_args | join(' ') }}
{# a comment #}
path = C:\{{ program }}\bin
    indented = {{ 2 * 21 }}

"""


def test_the_lookup_renders_what_the_template_task_writes(tmp_path):
    role = tmp_path / "roles" / "probe_me"
    (role / "templates").mkdir(parents=True)
    (role / "tasks").mkdir()
    (role / "templates" / "program.conf.j2").write_text(TEMPLATE)
    written = tmp_path / "written.conf"
    (role / "tasks" / "main.yml").write_text(f"""
- name: Write it as a role does
  ansible.builtin.template:
    src: program.conf.j2
    dest: {written}
    mode: "0644"
- name: Compare
  ansible.builtin.assert:
    that:
      - lookup('fastapi_deploy.stack.rendered', 'program.conf.j2') == lookup('ansible.builtin.file', '{written}', rstrip=False)
      - query('fastapi_deploy.stack.rendered', 'program.conf.j2', 'program.conf.j2') | length == 2
""")
    playbook = tmp_path / "play.yml"
    playbook.write_text("""
- hosts: localhost
  gather_facts: false
  vars:
    program: api
    settings: {b: 2, a: "x y"}
    command_args: [--workers, "4"]
  roles: [probe_me]
""")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_ROLES_PATH=str(tmp_path / "roles"),
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / "collections"), ANSIBLE_NOCOLOR="1")
    result = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                             "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "[program:api]" in written.read_text()
    assert "ok=2" in result.stdout
