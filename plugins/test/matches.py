# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fastapi-deploy maintainers
# MIT License (see LICENSES/MIT.txt)
"""The `matches` test: is a path's probed state (fastapi_deploy.stack.probe) the wanted one?"""

from __future__ import annotations

import hashlib

DOCUMENTATION = r"""
name: matches
short_description: Compare a path's probed state with the wanted one
description:
  - The input is one entry of C(files) returned by M(fastapi_deploy.stack.probe).
  - With O(content), the path must be a regular file with exactly that content; otherwise
    O(want.state) says what it must be (V(directory), V(link), V(absent)).
  - C(owner), C(group) and C(mode) of O(want) are compared where given; other keys of
    O(want) (a template name, a destination, a handler) are ignored, so a task's loop item
    can be passed as it is. A link is compared by its C(src).
options:
  _input: {description: the probed state of one path, type: dict, required: true}
  want: {description: the wanted state, type: dict, required: true}
  content: {description: the exact content a file must have, type: str}
"""

EXAMPLES = r"""
- name: Write the configuration files that differ
  ansible.builtin.template:
    src: "{{ item.template }}"
    dest: "{{ item.dest }}"
    mode: "{{ item.mode }}"
  loop: "{{ __role_files }}"
  when: >-
    __role_state.files[item.dest] is not fastapi_deploy.stack.matches(item,
    content=lookup('fastapi_deploy.stack.rendered', item.template))
"""


def _mode(value):
    """'0644', '644', 0o644 (420) all become '0644'."""
    if isinstance(value, int):
        return "%04o" % value
    return "%04o" % int(str(value), 8)


def matches(actual, want, content=None):
    actual = actual or {"state": "absent"}
    state = "file" if content is not None else want.get("state", "file")
    if actual.get("state") != state:
        return False
    if state == "absent":
        return True
    if state == "link":
        return actual.get("src") == want.get("src")
    for key in ("owner", "group"):
        if want.get(key) is not None and str(want[key]) != actual.get(key):
            return False
    if want.get("mode") is not None and _mode(want["mode"]) != actual.get("mode"):
        return False
    if content is not None:
        return hashlib.sha1(str(content).encode("utf-8")).hexdigest() == actual.get("sha1")
    return True


class TestModule:
    def tests(self):
        return {"matches": matches}
