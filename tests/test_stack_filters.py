"""fastapi_deploy.stack's `differing` filters: what a role changes is what its probe found different."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "collections"))

from ansible_collections.fastapi_deploy.stack.plugins.filter.differing import (  # noqa: E402
    differing,
    differing_units,
)


def sha1(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


FILES = {
    "/etc/a.conf": {"state": "file", "owner": "root", "group": "root", "mode": "0644", "sha1": sha1("a\n")},
    "/etc/b.conf": {"state": "file", "owner": "root", "group": "root", "mode": "0644", "sha1": sha1("b\n")},
    "/var/log/x": {"state": "directory", "owner": "root", "group": "adm", "mode": "0750"},
    "/etc/gone": {"state": "absent"},
    "/etc/old-key": {"state": "file", "owner": "root", "group": "root", "mode": "0600", "sha1": sha1("k")},
}


def test_files_with_other_content_or_mode_are_listed():
    items = [
        {"dest": "/etc/a.conf", "owner": "root", "group": "root", "mode": "0644"},
        {"dest": "/etc/b.conf", "owner": "root", "group": "root", "mode": "0640"},
    ]
    # a's content changed; b's mode differs.
    assert differing(items, FILES, contents=["a changed\n", "b\n"]) == items
    assert differing(items, FILES, contents=["a\n", "b\n"]) == items[1:]
    assert differing(items[:1], FILES, contents=["a\n"]) == []


def test_content_can_come_from_the_item():
    items = [{"dest": "/etc/a.conf", "mode": "0644", "content": "a\n"}, {"dest": "/etc/gone", "content": "new"}]
    assert differing(items, FILES, content_key="content") == items[1:]


def test_directories_by_path_and_paths_that_must_be_absent():
    wanted = {"path": "/var/log/x", "state": "directory", "owner": "root", "group": "adm", "mode": "0750"}
    assert differing([wanted], FILES, key="path") == []
    assert differing([dict(wanted, mode="0755")], FILES, key="path") == [dict(wanted, mode="0755")]
    assert differing(["/etc/gone", "/etc/old-key"], FILES) == ["/etc/old-key"]


def test_a_path_the_probe_did_not_read_is_an_error_not_a_guess():
    with pytest.raises(ValueError, match="did not read /etc/other"):
        differing([{"dest": "/etc/other"}], FILES)
    with pytest.raises(ValueError, match="2 contents for 1 items"):
        differing([{"dest": "/etc/a.conf"}], FILES, contents=["a", "b"])


SERVICES = {
    "nginx": {"active": "active", "enabled": "enabled", "loaded": "loaded"},
    "fail2ban": {"active": "inactive", "enabled": "disabled", "loaded": "loaded"},
    "rpcbind": {"active": "active", "enabled": "enabled", "loaded": "loaded"},
    "avahi-daemon": {"active": "inactive", "enabled": "disabled", "loaded": "not-found"},
}


def test_units_not_in_their_wanted_state_are_listed():
    items = [{"name": "nginx", "state": "started"}, {"name": "fail2ban", "state": "started"}]
    assert differing_units(items, SERVICES) == items[1:]
    assert differing_units([{"name": "fail2ban", "state": "stopped"}], SERVICES) == []


def test_units_to_stop_that_are_not_installed_are_left_out():
    assert differing_units(["rpcbind", "avahi-daemon"], SERVICES, state="stopped") == ["rpcbind"]
    with pytest.raises(ValueError, match="did not read the unit cups"):
        differing_units(["cups"], SERVICES, state="stopped")
