"""Check a release in its venv before any slot starts: check-app MODULE:ATTR WORKER_CLASS

Run with the release's venv Python, as the app user, in the release, with the new
environment. Each check stops at the first failure, saying which step failed in the
app's terms (on stderr, its first line "STEP: ..."), and exits 1:

  import    the app's module cannot be imported (a missing dependency, a syntax error)
  settings  importing it failed while constructing its settings (pydantic's ValidationError)
  app_asgi_module   the module has no such attribute, or it is not callable
  app_worker_class  the worker class cannot be imported from the venv
"""

import importlib
import sys
import traceback


def fail(step, lines):
    print(step, file=sys.stderr)
    for line in lines:
        print(line.rstrip("\n"), file=sys.stderr)
    sys.exit(1)


def is_settings_error(error):
    kind = type(error)
    return kind.__name__ == "ValidationError" and kind.__module__.split(".")[0] in ("pydantic", "pydantic_core")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: check-app MODULE:ATTR WORKER_CLASS")
    target, worker_class = sys.argv[1], sys.argv[2]
    module_name, _colon, attribute = target.partition(":")
    sys.path.insert(0, ".")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any error of the app's import is the finding
        step = "settings: the app's settings cannot be constructed from app_env" if is_settings_error(error) \
            else f"import: the app's module {module_name} cannot be imported"
        fail(step, traceback.format_exception_only(type(error), error)
             if is_settings_error(error) else traceback.format_exc().splitlines()[-12:])
    factory = attribute.endswith("()")
    name = attribute[:-2] if factory else attribute
    app = module
    for part in name.split("."):
        app = getattr(app, part, None)
    if app is None or not callable(app):
        fail(f"app_asgi_module: {module_name} has no callable {name} (app_asgi_module is {target})", [])
    worker_module, _dot, worker_name = worker_class.rpartition(".")
    try:
        worker = getattr(importlib.import_module(worker_module), worker_name)
    except (ImportError, AttributeError) as error:
        fail(f"app_worker_class: {worker_class} cannot be imported from the venv"
             " (is its package in the requirements?)", traceback.format_exception_only(type(error), error))
    if not isinstance(worker, type):
        fail(f"app_worker_class: {worker_class} is not a class", [])


if __name__ == "__main__":
    main()
