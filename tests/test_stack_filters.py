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


# ---------------------------------------------------------------- pending, resolve_ref

from ansible_collections.fastapi_deploy.stack.plugins.filter.resolve_ref import resolve_ref  # noqa: E402
from ansible_collections.fastapi_deploy.stack.plugins.test.pending import pending  # noqa: E402


def test_pending_is_true_when_any_entry_has_something_to_change():
    assert not pending({"templates": [], "default_site": False, "host_keys": {}})
    assert pending({"templates": [{"dest": "/etc/nginx/nginx.conf"}], "default_site": False})
    assert pending({"templates": [], "default_site": True})
    assert not pending({"templates": [], "default_site": True}, only=["templates"])
    with pytest.raises(KeyError, match="no entry tempaltes"):
        pending({"templates": []}, only=["tempaltes"])


SHA = {name: hashlib.sha1(name.encode()).hexdigest() for name in ("main", "tag", "peeled", "lookalike", "v1branch")}
LS_REMOTE = "\n".join([
    f"{SHA['main']}\trefs/heads/main",
    f"{SHA['lookalike']}\trefs/heads/x/refs/heads/main",
    f"{SHA['v1branch']}\trefs/heads/v1",
    f"{SHA['tag']}\trefs/tags/v1",
    f"{SHA['tag']}\trefs/tags/v2",
    f"{SHA['peeled']}\trefs/tags/v2^{{}}",
])


def test_resolve_ref_takes_exact_refs_only():
    assert resolve_ref(LS_REMOTE, "main") == {"sha": SHA["main"], "ref": "refs/heads/main"}
    # A branch wins over a tag of the same name; an annotated tag is peeled to its commit.
    assert resolve_ref(LS_REMOTE, "v1") == {"sha": SHA["v1branch"], "ref": "refs/heads/v1"}
    assert resolve_ref(LS_REMOTE, "v2") == {"sha": SHA["peeled"], "ref": "refs/tags/v2"}
    # No tail matching: heads/main is no ref of its own.
    assert resolve_ref(LS_REMOTE, "heads/main") == {}
    assert resolve_ref(LS_REMOTE, "nothing") == {}
    assert resolve_ref("", SHA["main"]) == {"sha": SHA["main"], "ref": ""}


def test_batches_takes_what_a_plays_serial_takes():
    from ansible_collections.fastapi_deploy.stack.plugins.test.batches import batches

    for good in (1, "1", 20, "25%", "100%", [1, "25%"], [1, 2, "50%"], ["1%"]):
        assert batches(good), good
    for bad in (0, "0", -1, "0%", "101%", "25 %", "[1,", [], [1, 0], [1, "x"], True, None, {"a": 1}, 1.5):
        assert not batches(bad), bad


# ------------------------------------------------------------------ entry_errors

from ansible_collections.fastapi_deploy.stack.plugins.filter.entry_errors import entry_errors  # noqa: E402

PROCESS_SPEC = {"command": {"required": True}, "count": {"type": "int", "min": 1},
                "stop_signal": {"choices": ["TERM", "INT"]}}


def test_good_entries_have_no_errors():
    assert entry_errors({"worker": {"command": "arq app.W", "count": 2}, "mailer": {"command": "x"}}, PROCESS_SPEC) == []
    assert entry_errors({}, PROCESS_SPEC) == []


def test_each_problem_names_the_entry_and_its_key():
    errors = entry_errors({
        "bad-name": {"command": "x"},
        "no_command": {"count": 1},
        "empty": {"command": "  "},
        "zero": {"command": "x", "count": 0},
        "words": {"command": "x", "count": "two"},
        "signal": {"command": "x", "stop_signal": "KILL"},
        "typo": {"command": "x", "cuont": 2},
        "text": "arq app.W",
    }, PROCESS_SPEC)
    assert errors == [
        "bad-name: not a name (letters, digits and _, not starting with a digit)",
        "empty.command: got '  '; expected a non-empty string",
        "no_command.command: is required",
        "signal.stop_signal: got 'KILL'; expected one of TERM, INT",
        "text: expected a mapping (command, count, stop_signal)",
        "typo.cuont: not a setting (command, count, stop_signal are)",
        "words.count: got 'two'; expected a whole number",
        "zero.count: got 0; expected 1 or more",
    ]
    assert entry_errors(["worker"], PROCESS_SPEC) == ["expected a mapping of names to entries"]
