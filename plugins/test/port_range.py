# -*- coding: utf-8 -*-
# Copyright: (c) 2026, fastapi-deploy maintainers
# MIT License (see LICENSES/MIT.txt)
"""The `port_range` test: is a value PORT/PROTO or LOW-HIGH/PROTO, with ports 1-65535?"""

from __future__ import annotations

import re

DOCUMENTATION = r"""
name: port_range
short_description: Is a value a port or a port range with its protocol (V(443/tcp), V(8000-8100/udp))?
description:
  - True for C(PORT/PROTO) or C(LOW-HIGH/PROTO), ports 1 to 65535, C(LOW) not above C(HIGH),
    C(PROTO) V(tcp) or V(udp).
options:
  _input: {description: the value, type: raw, required: true}
"""

EXAMPLES = r"""
open: "{{ hardening_firewall_open_ports | reject('fastapi_deploy.stack.port_range') | list | length == 0 }}"
"""

RETURN = r"""
_value: {description: whether the value is a port or a port range with its protocol, type: bool}
"""

_FORM = re.compile(r"^([0-9]{1,5})(?:-([0-9]{1,5}))?/(tcp|udp)$")


def port_range(value):
    found = _FORM.match(value) if isinstance(value, str) else None
    if not found:
        return False
    low = int(found.group(1))
    high = int(found.group(2) or low)
    return 1 <= low <= high <= 65535


class TestModule:
    def tests(self):
        return {"port_range": port_range}
