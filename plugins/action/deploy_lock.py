# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fastapi-deploy maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A per-host deploy lock held by one run of ansible-playbook for its whole length.

The holder is the controller's user and host and the ansible-playbook process (pid, its
start time, its command line). A second run waits up to the timeout, then fails naming
the holder. A lock left by a run of this controller that is gone (killed, interrupted,
its host rebooted) is stale: it is taken over with a warning. A lock of a run on another
controller cannot be checked from here: the message says how to take it over
(`-e deploy_lock_takeover=<its token>`).
"""

from __future__ import annotations

import getpass
import os
import socket
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
action: deploy_lock
short_description: Hold a per-host deploy lock for the run of this ansible-playbook
options:
  path: {description: the lock file on the host, type: path, required: true}
  state: {description: V(held) or V(released), type: str, default: held}
  timeout: {description: seconds to wait for another run's lock, type: int, default: 0}
  takeover: {description: the token of another run's lock to replace (from the failure message), type: str, default: ""}
"""


def _stat(pid):
    """(start time in clock ticks, parent pid) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[19], int(fields[1])


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode("utf-8", "replace").rstrip("\0").split("\0")
    except OSError:
        return []


def _playbook_process():
    """The ansible-playbook process this worker runs for (its parent, or further up)."""
    pid = os.getppid()
    while pid > 1:
        args = _cmdline(pid)
        if any(os.path.basename(a).startswith("ansible-playbook") for a in args[:2]):
            return pid, args
        found = _stat(pid)
        if not found:
            break
        pid = found[1]
    return os.getppid(), _cmdline(os.getppid())


def holder():
    pid, args = _playbook_process()
    controller = socket.gethostname()
    started = (_stat(pid) or ("?", 0))[0]
    return {
        "token": f"{controller}:{pid}:{started}",
        "user": getpass.getuser(),
        "controller": controller,
        "pid": pid,
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join(a for a in args if not a.startswith("--vault")),
    }


def stale(other):
    """A holder of this controller whose process is gone (or is another process now)."""
    if other.get("controller") != socket.gethostname():
        return False
    found = _stat(other.get("pid", 0))
    return not found or f"{other['controller']}:{other['pid']}:{found[0]}" != other.get("token")


def describe(other):
    if other.get("unreadable"):
        return "an unreadable lock file"
    return (f"{other.get('user')}@{other.get('controller')} (pid {other.get('pid')}, since {other.get('since')}: "
            f"{other.get('command')})")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("path", "state", "timeout", "takeover"))

    def _lock(self, task_vars, me, **args):
        return self._execute_module(
            module_name="fastapi_deploy.stack.deploy_lock",
            module_args={"path": self._task.args["path"], "holder": me, **args},
            task_vars=task_vars,
        )

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        if "path" not in args:
            raise AnsibleActionFail("deploy_lock: path is required")
        me = holder()
        host = task_vars.get("inventory_hostname")
        if args.get("state", "held") == "released":
            result.update(self._lock(task_vars, me, state="released"))
            result["changed"] = False
            return result

        found = self._lock(task_vars, me, timeout=0)
        if found.get("failed"):
            return found
        if not found["held"] and self._play_context.check_mode is False and stale(found["holder"]):
            self._display.warning(
                f"{host}: the deploy lock {args['path']} was held by {describe(found['holder'])}, "
                "which is gone: taking it over (that run may have left a slot or release half-done; this run "
                "converges them)")
            found = self._lock(task_vars, me, takeover=found["holder"]["token"])
        elif not found["held"] and args.get("takeover") and args["takeover"] == found["holder"].get("token"):
            self._display.warning(f"{host}: taking over the deploy lock of {describe(found['holder'])} as asked")
            found = self._lock(task_vars, me, takeover=args["takeover"])
        elif not found["held"] and int(args.get("timeout", 0)) > 0 and not self._play_context.check_mode:
            self._display.display(f"{host}: waiting up to {args['timeout']} s for the deploy lock of {describe(found['holder'])}")
            found = self._lock(task_vars, me, timeout=int(args["timeout"]))
        if found.get("failed"):
            return found
        result["changed"] = False
        if not found["held"]:
            other = found["holder"]
            result["failed"] = True
            if self._play_context.check_mode:
                result["failed"] = False
                self._display.warning(f"{host}: another run holds the deploy lock: {describe(other)}")
                return result
            result["msg"] = (
                f"{host}: another run is deploying here: the deploy lock {args['path']} is held by {describe(other)}. "
                f"Nothing was changed. If that run is gone (its controller cannot tell from here), take the lock "
                f"over with -e deploy_lock_takeover={other.get('token', '')}")
            result["holder"] = other
        return result
