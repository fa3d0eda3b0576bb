"""The redact filter: app_env values never reach the operator's screen."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("redact", ROOT / "plugins/filter/redact.py")
redact_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(redact_module)
redact = redact_module.redact


def test_values_are_replaced_by_their_names():
    env = {"DATABASE_URL": "postgresql://app:s3cret-pw@db/app", "SECRET_KEY": "k" * 32}
    error = "Input should be a valid URL [input_value='postgresql://app:s3cret-pw@db/app'] key=" + "k" * 32
    shown = redact(error, env)
    assert "s3cret-pw" not in shown and "k" * 32 not in shown
    assert "<DATABASE_URL>" in shown and "<SECRET_KEY>" in shown


def test_a_value_inside_another_stays_hidden():
    env = {"PASSWORD": "s3cret-pw-123", "URL": "postgresql://app:s3cret-pw-123@db/app"}
    assert redact("url postgresql://app:s3cret-pw-123@db/app and s3cret-pw-123", env) == "url <URL> and <PASSWORD>"


def test_short_values_and_other_types_are_left():
    env = {"DEBUG": "false", "ENVIRONMENT": "test", "WORKERS": 4}
    text = "DEBUG false in test with 4 workers"
    assert redact(text, env) == text
    assert redact(None, env) == ""
