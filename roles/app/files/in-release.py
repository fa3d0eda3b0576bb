"""Run a command in the release this host serves: in-release APP_ROOT SUBDIR COMMAND...

Scheduled jobs and playbooks/run.yml run through it, so they follow every switch and
rollback without being rewritten. The command runs in the serving release's directory
(APP_ROOT/current, then SUBDIR, "." for none) with its venv first on PATH (the venv its
RELEASE.json names), APP_RELEASE set to its id, and the serving environment exported
(APP_ROOT/shared/.env, by bin/with-env beside this file). Run it as the app user.
"""

import json
import os
import sys
from pathlib import Path


def main() -> None:
    if len(sys.argv) < 4:
        sys.exit("usage: in-release APP_ROOT SUBDIR COMMAND...")
    root, subdir, command = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    try:
        release = json.loads((root / "current/RELEASE.json").read_text())
    except (OSError, ValueError) as exc:
        sys.exit(f"in-release: no release serves in {root} ({exc})")
    os.chdir(root / "current" / subdir)
    os.environ.update(APP_RELEASE=release["id"], VIRTUAL_ENV=release["venv"],
                      PATH=f"{release['venv']}/bin:{os.environ.get('PATH') or '/usr/local/bin:/usr/bin:/bin'}")
    with_env = str(Path(__file__).resolve().with_name("with-env"))
    os.execv(with_env, [with_env, str(root / "shared/.env"), *command])


if __name__ == "__main__":
    main()
