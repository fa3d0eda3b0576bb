# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fastapi-deploy maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check a role's variables strictly, and report every bad one of the run at once.

Each role's ``tasks/preflight.yml`` calls this once, before the role changes anything:

* every option of the role's ``meta/argument_specs.yml`` (entry point ``main``) is checked
  for its type without conversion (a list where a string goes is an error, not the
  string ``"['a', 'b']"``), ``required`` and ``choices``, elements and sub-options;
* then the role's own ``rules``, each naming the variable it is about, the condition it
  must meet (an expression, as in ``assert``) and what is expected; a rule is skipped
  when its variable already failed its type check;
* with ``report: true`` (the default) the task fails listing every error found so far
  in the run (this call's and those of earlier calls with ``report: false``), a line
  each, and the variables with a role's prefix that no role of the run knows (a typo,
  such as ``app_repository`` for ``app_repo``), with the closest known name.

playbooks/deploy.yml runs every role's preflight with ``report: false`` before the first
change, then one last call with ``report: true`` and no role.
"""

from __future__ import annotations

import difflib
import json
import os

import yaml
from ansible.module_utils.parsing.convert_bool import BOOLEANS, boolean
from ansible.plugins.action import ActionBase

ERRORS = "__fastapi_deploy_input_errors"
KNOWN = "__fastapi_deploy_known_inputs"
PREFIXES = "__fastapi_deploy_input_prefixes"
CHECKED = "__fastapi_deploy_checked_roles"

_TYPES = {
    "str": "a string",
    "path": "a path (a string)",
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "list": "a list",
    "dict": "a mapping",
}


def _shown(value, limit=70):
    text = json.dumps(value, default=str, ensure_ascii=False) if not isinstance(value, str) else repr(str(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value):
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _type_ok(kind, value):
    if kind in ("raw", None):
        return True
    if kind in ("str", "path"):
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool) or (isinstance(value, str) and value.lower() in BOOLEANS)
    if kind == "int":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and value.strip().lstrip("-").isdigit())
    if kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        try:
            float(value)
        except (TypeError, ValueError):
            return False
        return isinstance(value, str)
    if kind == "list":
        return isinstance(value, (list, tuple))
    if kind == "dict":
        return isinstance(value, dict)
    return True


def check_option(name, spec, value, errors):
    """Append (name, message) for each way value breaks spec; True when it is good."""
    kind = spec.get("type", "str")
    secret = spec.get("no_log", False)
    shown = "(hidden)" if secret else _shown(value)
    if not _type_ok(kind, value):
        errors.append((name, f"got {_kind(value)} ({shown}); expected {_TYPES.get(kind, kind)}"))
        return False
    good = True
    if spec.get("choices") and value not in spec["choices"]:
        errors.append((name, f"got {shown}; expected one of {', '.join(map(str, spec['choices']))}"))
        good = False
    if kind == "list" and spec.get("elements"):
        for index, item in enumerate(value):
            good &= check_option(f"{name}[{index}]", {"type": spec["elements"], "options": spec.get("options"),
                                                      "no_log": secret}, item, errors)
    elif kind == "dict" and spec.get("options"):
        good &= check_options(name + ".", spec["options"], value, errors, unknown=True)
    return good


def check_options(prefix, options, values, errors, unknown=False):
    good = True
    for option, spec in options.items():
        name = prefix + option
        if option not in values:
            if spec.get("required"):
                errors.append((name, f"is required: {_first_line(spec.get('description'))}"))
                good = False
            continue
        good &= check_option(name, spec, values[option], errors)
    if unknown:
        for key in sorted(set(values) - set(options)):
            errors.append((prefix + key, f"is not a setting here; expected one of {', '.join(sorted(options))}"))
            good = False
    return good


def _first_line(description):
    if isinstance(description, list):
        description = description[0] if description else ""
    return str(description or "").strip().split("\n", maxsplit=1)[0]


def unknown_inputs(names, known, prefixes):
    """(name, message) for each variable with a role's prefix that no role knows."""
    found = []
    for name in sorted(names):
        if name in known or not any(name.startswith(p) for p in prefixes):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        found.append((name, f"is not a variable of any role here (a typo?){hint}"))
    return found


def format_report(errors, limit=12):
    lines = [f"{len(errors)} bad input{'s' if len(errors) != 1 else ''}, nothing was changed:"]
    lines += [f"- {name}: {message}" for name, message in errors[:limit]]
    if len(errors) > limit:
        lines.append(f"- and {len(errors) - limit} more")
    return "\n".join(lines)


class ActionModule(ActionBase):
    _requires_connection = False
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        rules = args.get("rules") or []
        report = boolean(args.get("report", True), strict=False)

        role = self._task._role
        checked = list(task_vars.get(CHECKED, []))
        # playbooks/deploy.yml checks every role before the first change; the same check (this
        # task of this role) from the role's own main.yml, later in the run, has nothing new
        # to find. A role's other checks still run.
        this_check = f"{role.get_name()}: {self._task.name}" if role is not None else None
        if not report and this_check in checked:
            return {"changed": False, "msg": f"{this_check}: checked earlier in this run"}

        errors = [tuple(e) for e in task_vars.get(ERRORS, [])]
        known = set(task_vars.get(KNOWN, []))
        prefixes = set(task_vars.get(PREFIXES, []))
        failed_vars = set()

        if role is not None and args.get("spec", True):
            prefixes.add(role.get_name().split(".")[-1] + "_")
            options = self._options(role)
            known.update(options)
            templar = self._templar.copy_with_new_env(available_variables=task_vars)
            values = {}
            for option in options:
                if option in task_vars:
                    values[option] = templar.template(task_vars[option])
            found = []
            check_options("", options, values, found)
            errors += found
            failed_vars.update(name.split(".")[0].split("[")[0] for name, _message in found)

        for rule in rules:
            name = rule["var"]
            if name.split(".")[0].split("[")[0] in failed_vars:
                continue
            that = rule["that"] if isinstance(rule["that"], list) else [rule["that"]]
            try:
                good = all(self._evaluate(c, task_vars) for c in that)
            except Exception:  # a value of the wrong shape for the expression: bad input too
                good = False
            if good:
                continue
            if rule.get("secret"):
                got = ""
            else:
                try:
                    got = f"got {_shown(self._value(name, task_vars))}; "
                except Exception:
                    got = ""
            errors.append((name, f"{got}expected {rule['expect']}"))
            failed_vars.add(name.split(".")[0].split("[")[0])

        if not report:
            result["ansible_facts"] = {ERRORS: [list(e) for e in errors], KNOWN: sorted(known),
                                       PREFIXES: sorted(prefixes),
                                       CHECKED: checked + ([this_check] if this_check else [])}
            result["bad"] = [name for name, _message in errors]
            result["changed"] = False
            return result

        errors += unknown_inputs({n for n in task_vars if not n.startswith("_")}, known, prefixes)
        if errors:
            # Only the message: the whole of it is what the user reads.
            return {"failed": True, "changed": False, "msg": format_report(errors)}
        result["ansible_facts"] = {ERRORS: [], KNOWN: sorted(known), PREFIXES: sorted(prefixes)}
        result["changed"] = False
        result["msg"] = "all inputs are good"
        return result

    def _options(self, role):
        path = os.path.join(role._role_path, "meta", "argument_specs.yml")
        if not os.path.exists(path):
            return {}
        # libyaml's loader where there is one: the pure-Python one took 30 ms for the app's
        # spec, per host and run (measured).
        with open(path, encoding="utf-8") as f:
            specs = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
        return (specs.get("argument_specs", {}).get("main") or {}).get("options") or {}

    def _evaluate(self, expression, task_vars):
        templar = self._templar.copy_with_new_env(available_variables=task_vars)
        return bool(templar.evaluate_conditional(expression))

    def _value(self, name, task_vars):
        templar = self._templar.copy_with_new_env(available_variables=task_vars)
        return templar.resolve_variable_expression(name)


__all__ = ["ActionModule", "check_option", "check_options", "format_report", "unknown_inputs"]
