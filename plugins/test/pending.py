# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fastapi-deploy maintainers
# MIT License (see LICENSES/MIT.txt)
"""The `pending` test: has a role's probe found something to change?"""

from __future__ import annotations

DOCUMENTATION = r"""
name: pending
short_description: Is anything in a role's record of changes (set right after its probe)?
description:
  - >-
    A role reads what it manages with M(fastapi_deploy.stack.probe), then notes in one
    C(set_fact) what differs from what it wants, an entry per task that changes it (the
    items of its loop, or a flag). A step that includes several such tasks runs only when
    one of them has something to do, for example
    C(when: __nginx_changes is fastapi_deploy.stack.pending).
  - True when any entry (or only the entries named in O(only)) is a non-empty list or
    mapping, or true.
options:
  _input: {description: the record of changes, type: dict, required: true}
  only:
    description: The entries to look at; all when not given.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Write nginx.conf, the upstream and the site (checked together by nginx -t)
  ansible.builtin.include_tasks: configure.yml
  when: __nginx_changes is fastapi_deploy.stack.pending

- name: Create the app's accounts
  ansible.builtin.include_tasks: accounts.yml
  when: __app_changes is fastapi_deploy.stack.pending(only=['group', 'user'])
"""

RETURN = r"""
_value: {description: whether something is to change, type: bool}
"""


def pending(changes, only=None):
    if not isinstance(changes, dict):
        raise TypeError("pending: expected the mapping a role sets after its probe, not %s" % type(changes).__name__)
    names = list(changes) if only is None else list(only)
    unknown = [name for name in names if name not in changes]
    if unknown:
        raise KeyError("pending: no entry %s in %s" % (", ".join(unknown), sorted(changes)))
    return any(bool(changes[name]) for name in names)


class TestModule:
    def tests(self):
        return {"pending": pending}
