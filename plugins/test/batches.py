# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fastapi-deploy maintainers
# MIT License (see LICENSES/MIT.txt)
"""The `batches` test: is a value what a play's `serial` takes (hosts per batch)?"""

from __future__ import annotations

import re

DOCUMENTATION = r"""
name: batches
short_description: Is a value a batch size for a play's C(serial), or a list of them?
description:
  - True for a number of hosts (1 or more, as an integer or digits), a percentage of the
    play's hosts (V(1%) to V(100%)), or a non-empty list of those, such as V([1, "25%"])
    for a canary host first, then batches of a quarter of the hosts.
options:
  _input: {description: the value, type: raw, required: true}
"""

EXAMPLES = r"""
good: "{{ deploy_serial | default('100%') | string | from_yaml is fastapi_deploy.stack.batches }}"
"""

RETURN = r"""
_value: {description: whether the value is a batch size or a non-empty list of them, type: bool}
"""

_PERCENT = re.compile(r"^([0-9]{1,3})%$")


def _size(value):
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 1
    if isinstance(value, str):
        if value.isdigit():
            return int(value) >= 1
        found = _PERCENT.match(value)
        return bool(found) and 1 <= int(found.group(1)) <= 100
    return False


def batches(value):
    if isinstance(value, (list, tuple)):
        return len(value) > 0 and all(_size(v) for v in value)
    return _size(value)


class TestModule:
    def tests(self):
        return {"batches": batches}
