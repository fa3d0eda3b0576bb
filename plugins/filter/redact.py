# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fastapi-deploy maintainers
# MIT License (see LICENSES/MIT.txt)
"""The `redact` filter: hide the values of the app's environment in text shown to the operator."""

from __future__ import annotations

DOCUMENTATION = r"""
name: redact
short_description: Hide the values of a mapping (the app's environment) in a text
description:
  - An app's error output (a settings error, a failed migration, a log tail) may repeat the
    value of a setting, and the app's environment holds secrets.
  - Every value of eight characters or more (shorter ones are flags and names, not
    secrets) is replaced by C(<NAME>), the longest first so that a value inside another
    stays hidden.
options:
  _input: {description: the text, type: raw, required: true}
  env: {description: the mapping whose values are hidden (for example C(app_env)), type: dict, required: true}
"""

EXAMPLES = r"""
- name: "Check: the app's release"
  ansible.builtin.fail:
    msg: "{{ __app_settings.stderr | fastapi_deploy.stack.redact(app_env) }}"
  when: __app_settings.rc != 0
"""

RETURN = r"""
_value: {description: the text with every long value of O(env) replaced by its name, type: str}
"""


def redact(text: object, env: dict | None) -> str:
    text = "" if text is None else str(text)
    values = sorted(
        ((str(value), name) for name, value in (env or {}).items() if len(str(value)) >= 8),
        key=lambda pair: len(pair[0]),
        reverse=True,
    )
    for value, name in values:
        text = text.replace(value, f"<{name}>")
    return text


class FilterModule:
    def filters(self) -> dict:
        return {"redact": redact}
