# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fastapi-deploy maintainers
# MIT License (see LICENSES/MIT.txt)
"""The `service_state` test: is a probed systemd unit started and enabled, or stopped and disabled?"""

from __future__ import annotations

DOCUMENTATION = r"""
name: service_state
short_description: Is a probed systemd unit in the wanted state?
description:
  - The input is one entry of C(services) returned by M(fastapi_deploy.stack.probe).
  - V(started) is true for a unit that is active and enabled at boot, what
    C(state=started enabled=true) of M(ansible.builtin.systemd_service) leaves; V(stopped)
    for one neither active nor enabled, what C(state=stopped enabled=false) leaves.
options:
  _input: {description: the probed state of one unit, type: dict, required: true}
  state: {description: "V(started) or V(stopped)", type: str, required: true}
"""


def service_state(unit, state):
    unit = unit or {}
    active, enabled = unit.get("active") == "active", unit.get("enabled") == "enabled"
    if state == "started":
        return active and enabled
    if state == "stopped":
        return not active and not enabled
    raise ValueError("service_state: state must be 'started' or 'stopped', not %r" % (state,))


class TestModule:
    def tests(self):
        return {"service_state": service_state}
