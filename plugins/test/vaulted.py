# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fastapi-deploy maintainers
# MIT License (see LICENSES/MIT.txt)
"""The `vaulted` test: did a value come from ansible-vault?"""

from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.parsing.vault import is_encrypted_file

DOCUMENTATION = r"""
name: vaulted
short_description: Did a value come from ansible-vault (an encrypted vars file, V(!vault), the unvault lookup)?
description:
  - >-
    True for a value decrypted by ansible-vault, as a variable's value reaches a template
    (also through another variable, as in C(db_password: "{{ vault_db_password }}")): an
    inline C(!vault) string, a value of a vars file that is encrypted as a whole (the
    C(vault.yml) of an inventory's group), or what the C(ansible.builtin.unvault) lookup read.
  - False for plain text, and for a value made of more than the vaulted one (C("x{{ vault_x }}")).
  - Reads the origin ansible-core 2.19 records on every value (its data tags).
options:
  _input: {description: the value, type: raw, required: true}
"""

EXAMPLES = r"""
- name: Check the PostgreSQL variables
  fastapi_deploy.stack.check_inputs:
    rules:
      - var: postgresql_password
        that: postgresql_password is fastapi_deploy.stack.vaulted
        expect: a value from ansible-vault, not plain text
        secret: true
"""

RETURN = r"""
_value: {description: whether the value came from ansible-vault, type: bool}
"""


def _tags():
    try:
        from ansible._internal._datatag._tags import Origin, SourceWasEncrypted, VaultedValue
    except ImportError as error:  # an ansible-core without data tags (before 2.19)
        raise AnsibleError("the vaulted test needs ansible-core 2.19 or later (values' origins)") from error
    return Origin, SourceWasEncrypted, VaultedValue


def _encrypted_file(path):
    try:
        with open(path, "rb") as f:
            return is_encrypted_file(f)
    except OSError:
        return False


def vaulted(value):
    origin_tag, source_was_encrypted, vaulted_value = _tags()
    if vaulted_value.is_tagged_on(value) or source_was_encrypted.is_tagged_on(value):
        return True
    # A value of a vars file encrypted as a whole carries that file as its origin.
    origin = origin_tag.get_tag(value)
    return bool(origin and origin.path and os.path.isfile(origin.path) and _encrypted_file(origin.path))


class TestModule:
    def tests(self):
        return {"vaulted": vaulted}
