"""deploy.yml --check --diff: never fails because of check mode, changes nothing, and says
what a real run would deploy."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ansible_playbook, host_state, recap, releases, said, serving

# A commit on a side branch, so that the scenario's main stays what the other tests deploy.
BRANCH = "check-mode-pending"


def checksums(host) -> list[str]:
    """Every file the app role and the host layer wrote, by content (the database aside)."""
    return host.check_output(
        "find /srv/app /etc/nginx /etc/supervisor -xdev -path /srv/app/shared/data -prune -o -type f -print0 "
        "| sort -z | xargs -0 sha256sum"
    ).splitlines()


MIGRATION = '''"""check mode: a migration that must not run."""
from alembic import op

revision = "0009_check_mode"
down_revision = "0003_item_tags"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE TABLE check_mode_ran (id INTEGER)")


def downgrade():
    op.execute("DROP TABLE check_mode_ran")
'''


def add_migration_and_requirement(work: Path) -> None:
    (work / "alembic/versions/0009_check_mode.py").write_text(MIGRATION)
    requirements = work / "requirements.txt"
    requirements.write_text(requirements.read_text() + "# check mode: a changed requirements file\n")


def health(host) -> dict:
    return json.loads(host.check_output("curl -sk --resolve localhost:443:127.0.0.1 https://localhost/health"))


def test_check_mode_with_a_new_commit_pending_changes_nothing_and_says_what_it_would_deploy(host, app_repo, inventory_file):
    sha = app_repo.commit_to(BRANCH, "a migration and a changed requirements file", add_migration_and_requirement)
    before = serving(host), releases(host), host_state(host), checksums(host), health(host)["database_revision"]

    result = ansible_playbook("deploy.yml", inventory_file, "--check", "--diff", "-e", f"app_version={BRANCH}")

    assert result.returncode == 0, result.stdout[-3000:]
    text = said(result)
    assert f"({BRANCH} at {sha[:12]}) and switch to it from {before[0]['release']}" in text, text[-3000:]
    after = serving(host), releases(host), host_state(host), checksums(host), health(host)["database_revision"]
    assert after == before


def test_check_mode_with_nothing_pending_reports_no_change(host, inventory_file):
    before = serving(host)
    result = ansible_playbook("deploy.yml", inventory_file, "--check", "--diff")
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap(result)["changed"] == 0, result.stdout[-3000:]
    assert f"nothing to deploy: {before['release']} is serving" in said(result)
