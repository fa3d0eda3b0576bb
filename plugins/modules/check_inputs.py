#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fastapi-deploy maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of the check_inputs action plugin (plugins/action/check_inputs.py)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: check_inputs
short_description: Check a role's variables strictly and report every bad one at once
description:
  - An action plugin (it runs on the controller, nothing reaches the host). Each role's
    C(tasks/preflight.yml) calls it once, before the role changes anything.
  - Every option of the role's C(meta/argument_specs.yml) (entry point C(main)) is checked
    for its type without conversion (a list where a string goes is an error), C(required),
    C(choices), elements and sub-options; then the role's own O(rules).
  - With O(report=true) the task fails listing every error found so far in the run, a line
    each, and the variables with a role's prefix that no role knows, with the closest known name.
options:
  rules:
    description:
      - The role's own checks, each a mapping of V(var) (the variable's full name, for example
        C(app_env.DATABASE_URL)), V(that) (an expression or a list of them, as in assert),
        V(expect) (what a good value is) and optionally V(secret) (never show the value).
    type: list
    elements: dict
    default: []
  spec:
    description: Check the options of the role's C(meta/argument_specs.yml) (entry point C(main)).
    type: bool
    default: true
  report:
    description: Fail with every error found so far in the run; with V(false), keep them for a later call.
    type: bool
    default: true
author: fastapi-deploy maintainers (@fastapi-deploy)
"""

EXAMPLES = r"""
- name: Check nginx's variables
  fastapi_deploy.stack.check_inputs:
    rules:
      - var: nginx_server_names
        that: nginx_server_names | length > 0
        expect: a non-empty list of host names
"""

RETURN = r"""
bad:
  description: The variables found bad by this call (with O(report=false)).
  returned: when report is false
  type: list
  elements: str
"""
