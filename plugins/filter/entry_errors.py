# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fastapi-deploy maintainers
# MIT License (see LICENSES/MIT.txt)
"""The `entry_errors` filter: what is wrong with the entries of a mapping of named things
(app_processes, app_jobs), each problem naming the entry and its key."""

from __future__ import annotations

import re

DOCUMENTATION = r"""
name: entry_errors
short_description: The problems of a mapping of named entries, one line each
description:
  - The input is a mapping of names to entries (mappings); the result is a list of problems,
    each starting with the entry's name (and C(.KEY)), in name order. An empty list means all is well.
  - A name must be a Python identifier; an entry a mapping with no key the spec lacks; each
    key of the spec is checked by its C(type) (C(str), the default, for a non-empty one-line
    string; C(int) for a whole number), C(required), C(min) and C(choices).
options:
  _input: {description: the mapping to check, type: dict, required: true}
  spec: {description: "key: {type, required, min, choices}", type: dict, required: true}
"""

EXAMPLES = r"""
rules:
  - var: app_processes
    that: app_processes | fastapi_deploy.stack.entry_errors(spec) | length == 0
"""

RETURN = r"""
_value: {description: one line per problem, type: list, elements: str}
"""

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _problem(value, rule):
    if rule.get("type") == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                value = int(str(value), 10)
            except ValueError:
                return "got %r; expected a whole number" % (value,)
        if "min" in rule and value < rule["min"]:
            return "got %d; expected %d or more" % (value, rule["min"])
    else:
        if not isinstance(value, str) or not value.strip():
            return "got %r; expected a non-empty string" % (value,)
        if "\n" in value:
            return "expected one line"
    if "choices" in rule and value not in rule["choices"]:
        return "got %r; expected one of %s" % (value, ", ".join(rule["choices"]))
    return None


def entry_errors(entries, spec):
    if not isinstance(entries, dict):
        return ["expected a mapping of names to entries"]
    problems = []
    for name in sorted(entries, key=str):
        entry = entries[name]
        if not IDENTIFIER.match(str(name)):
            problems.append("%s: not a name (letters, digits and _, not starting with a digit)" % name)
        if not isinstance(entry, dict):
            problems.append("%s: expected a mapping (%s)" % (name, ", ".join(spec)))
            continue
        for key in sorted(set(entry) - set(spec), key=str):
            problems.append("%s.%s: not a setting (%s are)" % (name, key, ", ".join(spec)))
        for key, rule in spec.items():
            if key not in entry:
                if rule.get("required"):
                    problems.append("%s.%s: is required" % (name, key))
                continue
            problem = _problem(entry[key], rule)
            if problem:
                problems.append("%s.%s: %s" % (name, key, problem))
    return problems


class FilterModule:
    def filters(self):
        return {"entry_errors": entry_errors}
