#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fastapi-deploy maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read, in one round trip, the state of everything a role manages on a host."""

from __future__ import annotations

DOCUMENTATION = r"""
module: probe
short_description: Read the state of files, services, packages, users and lines in one round trip
description:
  - A read-only probe. A role calls it once and then runs only the tasks whose target
    differs from what it wants, so a run with nothing to change costs one round trip
    instead of one (or two) per file, service and package.
  - Never changes anything; supports check mode.
options:
  files:
    description:
      - Paths to inspect without following symlinks. Each gets C(state) (V(file),
        V(directory), V(link), V(absent) or V(other)); files and directories also
        C(owner), C(group) and C(mode) (four octal digits); files C(sha1) of their
        content; links C(src), their target.
    type: list
    elements: path
    default: []
  read:
    description: Small text files to read (state records, manifests); each gets its content, or null when absent.
    type: list
    elements: path
    default: []
  services:
    description:
      - systemd units; each gets C(active) (ActiveState), C(enabled) (UnitFileState) and
        C(loaded) (LoadState, V(not-found) for a unit that is not installed).
    type: list
    elements: str
    default: []
  packages:
    description: Debian packages; the ones not installed are listed in C(missing_packages).
    type: list
    elements: str
    default: []
  users:
    description: Accounts; each present one gets C(group) (primary group name), C(home) and C(shell).
    type: list
    elements: str
    default: []
  groups:
    description: Groups; the result lists which exist.
    type: list
    elements: str
    default: []
  lines:
    description: Path to the exact lines it must contain; the result lists, per path, the lines it lacks.
    type: dict
    default: {}
  commands:
    description:
      - Name to a read-only shell command (C(/bin/sh -c)); each gets C(rc), C(stdout) and
        C(stderr), stripped. For facts no file or unit shows (a key's size, a mount option).
    type: dict
    default: {}
author: fastapi-deploy maintainers (@fastapi-deploy)
"""

EXAMPLES = r"""
- name: Read nginx's package, files and service in one round trip
  fastapi_deploy.stack.probe:
    packages: [nginx]
    files: [/etc/nginx/nginx.conf, /etc/nginx/tls]
    services: [nginx]
    commands:
      certificate_end: openssl x509 -in /etc/nginx/tls/app.crt -noout -enddate
  register: __nginx_state

- name: Install nginx where it is missing
  ansible.builtin.apt:
    name: nginx
  when: __nginx_state.missing_packages | length > 0
"""

RETURN = r"""
files:
  description: Path to its state (C(state), and C(owner), C(group), C(mode), C(sha1) or C(src) as they apply).
  returned: always
  type: dict
read:
  description: Path to its content (null when absent).
  returned: always
  type: dict
services:
  description: Unit to its C(active), C(enabled) and C(loaded) states.
  returned: always
  type: dict
missing_packages:
  description: The packages asked for that are not installed.
  returned: always
  type: list
  elements: str
users:
  description: Account name to its C(group), C(home) and C(shell); absent accounts are left out.
  returned: always
  type: dict
groups:
  description: The groups asked for that exist.
  returned: always
  type: list
  elements: str
lines:
  description: Path to the lines it lacks.
  returned: always
  type: dict
commands:
  description: Name to the command's C(rc), C(stdout) and C(stderr).
  returned: always
  type: dict
"""

import grp
import hashlib
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule


def _name(lookup, ident):
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


def file_state(path):
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return {"state": "absent"}
    if stat.S_ISLNK(st.st_mode):
        return {"state": "link", "src": os.readlink(path)}
    kind = "file" if stat.S_ISREG(st.st_mode) else "directory" if stat.S_ISDIR(st.st_mode) else "other"
    result = {
        "state": kind,
        "owner": _name(pwd.getpwuid, st.st_uid),
        "group": _name(grp.getgrgid, st.st_gid),
        "mode": "%04o" % stat.S_IMODE(st.st_mode),
    }
    if kind == "file":
        digest = hashlib.sha1()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 16), b""):
                digest.update(block)
        result["sha1"] = digest.hexdigest()
    return result


def service_states(module, units):
    if not units:
        return {}
    rc, out, err = module.run_command(
        ["systemctl", "show", "--property=Id,LoadState,ActiveState,UnitFileState", "--", *units]
    )
    if rc != 0:
        module.fail_json(msg="systemctl show failed: %s" % (err or out).strip())
    # One block per unit, in the order asked, separated by blank lines.
    blocks = [dict(line.split("=", 1) for line in block.splitlines() if "=" in line) for block in out.strip().split("\n\n")]
    if len(blocks) != len(units):
        module.fail_json(msg="systemctl show answered %d blocks for %d units" % (len(blocks), len(units)))
    return {
        unit: {
            "active": block.get("ActiveState", ""),
            "enabled": block.get("UnitFileState", ""),
            "loaded": block.get("LoadState", ""),
        }
        for unit, block in zip(units, blocks)
    }


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def missing_packages(module, packages):
    if not packages:
        return []
    # Unknown names make dpkg-query exit 1 after listing the known ones: not an error here.
    rc, out, err = module.run_command(["dpkg-query", "-W", "-f=${Package}\t${db:Status-Abbrev}\n", "--", *packages])
    installed = set()
    for line in out.splitlines():
        name, _tab, status = line.partition("\t")
        if status.startswith("ii"):
            installed.add(name.split(":")[0])
    return [p for p in packages if p.split(":")[0] not in installed]


def user_states(users):
    result = {}
    for name in users:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        result[name] = {"group": _name(grp.getgrgid, entry.pw_gid), "home": entry.pw_dir, "shell": entry.pw_shell}
    return result


def existing_groups(groups):
    found = []
    for name in groups:
        try:
            grp.getgrnam(name)
            found.append(name)
        except KeyError:
            pass
    return found


def lacking_lines(lines):
    result = {}
    for path, wanted in lines.items():
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                present = set(f.read().splitlines())
        except FileNotFoundError:
            present = set()
        result[path] = [line for line in wanted if line not in present]
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="list", elements="path", default=[]),
            read=dict(type="list", elements="path", default=[]),
            services=dict(type="list", elements="str", default=[]),
            packages=dict(type="list", elements="str", default=[]),
            users=dict(type="list", elements="str", default=[]),
            groups=dict(type="list", elements="str", default=[]),
            lines=dict(type="dict", default={}),
            commands=dict(type="dict", default={}),
        ),
        supports_check_mode=True,
    )
    p = module.params
    commands = {}
    for name, command in p["commands"].items():
        rc, out, err = module.run_command(["/bin/sh", "-c", command])
        commands[name] = {"rc": rc, "stdout": out.strip(), "stderr": err.strip()}
    module.exit_json(
        changed=False,
        files={path: file_state(path) for path in p["files"]},
        read={path: read(path) for path in p["read"]},
        services=service_states(module, p["services"]),
        missing_packages=missing_packages(module, p["packages"]),
        users=user_states(p["users"]),
        groups=existing_groups(p["groups"]),
        lines=lacking_lines({path: [str(line) for line in wanted] for path, wanted in p["lines"].items()}),
        commands=commands,
    )


if __name__ == "__main__":
    main()
