"""Run a command with the app's environment file exported: with-env ENV_FILE COMMAND...

The file is written by Ansible with one KEY="json string" per line, which python-dotenv
(and so pydantic-settings) reads the same way. Variables already in the environment win,
so Supervisor's APP_RELEASE is kept. Files the command creates get umask 027.
"""

import json
import os
import sys


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: with-env ENV_FILE COMMAND...")
    env_file, command = sys.argv[1], sys.argv[2:]
    # What the app writes (its database, its backups) is not for other users.
    os.umask(0o027)
    with open(env_file, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep:
                sys.exit(f"{env_file}:{number}: not KEY=VALUE")
            os.environ.setdefault(key, json.loads(value))
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
