"""redact: hide the values of the app's environment in text shown to the operator.

    {{ output | redact(app_env) }}

An app's error output (a settings error, a failed migration, a log tail) may repeat the
value of a setting, and app_env holds secrets. Every value of eight characters or more
(shorter ones are flags and names, not secrets) is replaced by <NAME>, the longest
first so that a value inside another stays hidden.
"""

from __future__ import annotations


def redact(text: object, env: dict | None) -> str:
    text = "" if text is None else str(text)
    values = sorted(
        ((str(value), name) for name, value in (env or {}).items() if len(str(value)) >= 8),
        key=lambda pair: len(pair[0]),
        reverse=True,
    )
    for value, name in values:
        text = text.replace(value, f"<{name}>")
    return text


class FilterModule:
    def filters(self) -> dict:
        return {"redact": redact}
