# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fastapi-deploy maintainers
# MIT License (see LICENSES/MIT.txt)
"""The `differing` and `differing_units` filters: the items of a task's loop that the probe
(fastapi_deploy.stack.probe) found not as wanted. A role loops over these only, and includes
its change tasks only when one such list (or flag) is not empty."""

from __future__ import annotations

from ansible_collections.fastapi_deploy.stack.plugins.test.matches import matches
from ansible_collections.fastapi_deploy.stack.plugins.test.service_state import service_state

DOCUMENTATION = r"""
name: differing
short_description: The wanted paths whose probed state differs
description:
  - The input is a list of wanted states (a task's loop items, e.g. C(dest), C(owner), C(mode));
    the result is the items that the test P(fastapi_deploy.stack.matches#test) finds different
    from the entry of O(files) at the item's O(key).
options:
  _input: {description: the wanted states, type: list, elements: dict, required: true}
  files: {description: C(files) returned by M(fastapi_deploy.stack.probe), type: dict, required: true}
  key: {description: the item key holding the path, type: str, default: dest}
  contents:
    description:
      - The exact content of each file, in the order of the items (for example
        C(query('fastapi_deploy.stack.rendered', ...)) of their templates).
    type: list
    elements: str
  content_key: {description: the item key holding the exact content (instead of O(contents)), type: str}
"""

EXAMPLES = r"""
# vars/main.yml: what differs, one entry per task; tasks/main.yml includes the change
# tasks only when one is set (when: __role_todo.values() | select | list | length > 0).
__role_todo:
  directories: "{{ __role_directories | fastapi_deploy.stack.differing(__role_state.files, key='path') }}"
  templates: >-
    {{ __role_templates | fastapi_deploy.stack.differing(__role_state.files,
       contents=query('fastapi_deploy.stack.rendered', *(__role_templates | map(attribute='template')))) }}
  units: "{{ __role_units | fastapi_deploy.stack.differing_units(__role_state.services) }}"
"""


def differing(items, files, key="dest", contents=None, content_key=None):
    items = list(items)
    if contents is not None and len(contents) != len(items):
        raise ValueError("differing: %d contents for %d items" % (len(contents), len(items)))
    result = []
    for i, item in enumerate(items):
        want = item if isinstance(item, dict) else {key: item, "state": "absent"}
        content = contents[i] if contents is not None else (want.get(content_key) if content_key else None)
        if want[key] not in files:
            raise ValueError("differing: the probe did not read %s" % want[key])
        if not matches(files[want[key]], want, content=content):
            result.append(item)
    return result


def differing_units(items, services, state=None):
    """Units not in their wanted state: items are dicts with `name` and `state`, or unit names
    with `state` given. A unit to be stopped that is not installed is left out."""
    result = []
    for item in items:
        name, wanted = (item["name"], item["state"]) if isinstance(item, dict) else (item, state)
        if name not in services:
            raise ValueError("differing_units: the probe did not read the unit %s" % name)
        unit = services[name] or {}
        if wanted == "stopped" and unit.get("loaded") == "not-found":
            continue
        if not service_state(unit, wanted):
            result.append(item)
    return result


class FilterModule:
    def filters(self):
        return {"differing": differing, "differing_units": differing_units}
