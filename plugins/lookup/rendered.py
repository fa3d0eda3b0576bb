# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fastapi-deploy maintainers
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `rendered` lookup: what `ansible.builtin.template` would write, for a probe to compare.

The same rendering as `ansible.builtin.template` (the lookup and the task): the role's
templates directory, every variable of the task, `ansible_managed` and the `template_*`
variables. It differs from the builtin lookup in one thing only: the builtin deep-copies
every variable of the host (its facts, every role's defaults, hostvars) for each template
it renders, to add those few names; this one lays them over the variables in a ChainMap.
Measured on a no-change run of deploy.yml (one host, 27 templates compared): the copies
were a fifth of the controller's CPU.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: rendered
short_description: A template's content as the template task would write it
description:
  - Renders each template (searched in the role's C(templates) directory, as
    C(ansible.builtin.template) searches) with the task's variables, C(ansible_managed) and the
    C(template_*) variables, without copying the variables first.
  - For comparing what a role wants with what a host has (P(fastapi_deploy.stack.differing#filter)).
options:
  _terms:
    description: the template files
    required: true
"""

EXAMPLES = r"""
- name: Note the files that differ
  ansible.builtin.set_fact:
    __role_files_differing: >-
      {{ __role_files | fastapi_deploy.stack.differing(__role_state.files,
         contents=query('fastapi_deploy.stack.rendered', *(__role_files | map(attribute='template')))) }}
"""

RETURN = r"""
_raw:
  description: the rendered content of each template, in order
  type: list
  elements: str
"""

import os
from collections import ChainMap

from ansible.errors import AnsibleError
from ansible.plugins.lookup import LookupBase
from ansible.template import trust_as_template
from ansible._internal._templating import _template_vars
from ansible._internal._templating._engine import TemplateOptions


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        searchpath = []
        for path in variables.get("ansible_search_path", []):
            searchpath += [os.path.join(path, "templates"), path]
        rendered = []
        for term in terms:
            lookupfile = self.find_file_in_search_path(variables, "templates", term)
            if not lookupfile:
                raise AnsibleError(f"the template file {term} could not be found for the lookup")
            template_vars = _template_vars.generate_ansible_template_vars(
                path=term, fullpath=lookupfile, include_ansible_managed="ansible_managed" not in variables)
            templar = self._templar.copy_with_new_env(
                available_variables=ChainMap(template_vars, variables),
                searchpath=[os.path.dirname(lookupfile)] + searchpath)
            data = trust_as_template(self._loader.get_text_file_contents(lookupfile))
            # As the builtin lookup: the engine's own call, without the public API's
            # top-level finalization; backslashes kept as written.
            rendered.append(templar._engine.template(data, options=TemplateOptions(escape_backslashes=False)))
        return rendered
