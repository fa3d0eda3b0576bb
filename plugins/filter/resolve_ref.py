# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fastapi-deploy maintainers
# MIT License (see LICENSES/MIT.txt)
"""The `resolve_ref` filter: the commit a branch, tag or sha names, exactly, in `git ls-remote`'s output."""

from __future__ import annotations

import re

DOCUMENTATION = r"""
name: resolve_ref
short_description: The commit a version names in C(git ls-remote --heads --tags) output, by exact ref
description:
  - git's own lookups match a ref by its tail (a branch pushed as C(x/refs/heads/main) would
    do for C(main)) or prefer a tag to a branch. This filter does neither. In this order, a
    version is a full 40-hex commit sha (taken as it is), the branch C(refs/heads/VERSION),
    or the tag C(refs/tags/VERSION) (an annotated tag peeled to its commit).
  - The result is a mapping with C(sha) and C(ref) (the full ref name, empty for a sha), or
    an empty mapping when the repository has no such branch or tag.
options:
  _input: {description: the output of C(git ls-remote --heads --tags URL), type: str, required: true}
  version: {description: a branch, a tag or a full sha, type: str, required: true}
"""

EXAMPLES = r"""
- name: Resolve app_version exactly
  ansible.builtin.set_fact:
    __app_commit: "{{ __app_refs.stdout | fastapi_deploy.stack.resolve_ref(app_version) }}"
"""

RETURN = r"""
_value:
  description: C({sha, ref}), or an empty mapping when nothing has that name.
  type: dict
"""

_SHA = re.compile(r"^[0-9a-f]{40}$")


def resolve_ref(ls_remote, version):
    version = str(version)
    if _SHA.match(version):
        return {"sha": version, "ref": ""}
    refs = {}
    for line in str(ls_remote or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            refs[parts[1]] = parts[0]
    for name, lookup in (
        ("refs/heads/" + version, "refs/heads/" + version),
        ("refs/tags/" + version, "refs/tags/" + version + "^{}"),
        ("refs/tags/" + version, "refs/tags/" + version),
    ):
        if lookup in refs:
            return {"sha": refs[lookup], "ref": name}
    return {}


class FilterModule:
    def filters(self):
        return {"resolve_ref": resolve_ref}
