#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fastapi-deploy maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host side of a deploy lock: one file, created exclusively, naming its holder."""

from __future__ import annotations

DOCUMENTATION = r"""
module: deploy_lock
short_description: Take, wait for, take over or release a deploy lock on a host
description:
  - Used through its action plugin of the same name, which names the holder (the
    controller's user, host and C(ansible-playbook) process) and recognises a stale lock.
    Called directly it does one step of the host side.
  - The lock is a file created with C(O_EXCL) holding its holder as JSON; it is never
    reported as a change.
options:
  path: {description: the lock file, type: path, required: true}
  state:
    description: V(held) to take it, V(released) to give it back.
    type: str
    choices: [held, released]
    default: held
  holder: {description: who takes it (a dict with at least C(token)), type: dict, required: true}
  timeout: {description: seconds to wait while another holder has it, type: int, default: 0}
  takeover: {description: the token of a holder whose lock may be replaced, type: str, default: ""}
author: fastapi-deploy maintainers (@fastapi-deploy)
"""

EXAMPLES = r"""
# Through the action plugin of the same name, which fills in the holder.
- name: Take the deploy lock of app
  fastapi_deploy.stack.deploy_lock:
    path: /run/lock/fastapi-deploy-app.lock
    timeout: 60

- name: Release it
  fastapi_deploy.stack.deploy_lock:
    path: /run/lock/fastapi-deploy-app.lock
    state: released
"""

RETURN = r"""
held: {description: whether the caller holds the lock now, returned: always, type: bool}
holder: {description: the holder found in the file when another one has it, returned: when held is false, type: dict}
took_over: {description: the holder whose lock was replaced, returned: when a lock was taken over, type: dict}
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule


def read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"token": "", "unreadable": True}


def create(path, holder):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(holder, f)


def replace(path, holder):
    new = path + ".new"
    with open(new, "w", encoding="utf-8") as f:
        json.dump(holder, f)
    os.chmod(new, 0o644)
    os.rename(new, path)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["held", "released"], default="held"),
            holder=dict(type="dict", required=True),
            timeout=dict(type="int", default=0),
            takeover=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    path, me, token = module.params["path"], module.params["holder"], module.params["holder"].get("token", "")
    if module.check_mode:
        current = read(path)
        module.exit_json(changed=False, held=current is None or current.get("token") == token, holder=current or {})

    if module.params["state"] == "released":
        current = read(path)
        if current is not None and current.get("token") == token:
            os.unlink(path)
        module.exit_json(changed=False, held=False)

    os.makedirs(os.path.dirname(path), exist_ok=True)
    deadline = time.monotonic() + module.params["timeout"]
    while True:
        try:
            create(path, me)
            module.exit_json(changed=False, held=True)
        except FileExistsError:
            pass
        current = read(path)
        if current is None:
            continue  # released between our two calls
        if current.get("token") == token:
            module.exit_json(changed=False, held=True)
        if module.params["takeover"] and current.get("token") == module.params["takeover"]:
            replace(path, me)
            module.exit_json(changed=False, held=True, took_over=current)
        if time.monotonic() >= deadline:
            module.exit_json(changed=False, held=False, holder=current)
        time.sleep(1)


if __name__ == "__main__":
    main()
