#!/bin/sh
# NOT part of the product: the benchmark's baseline redeploy, the book's procedure for a
# traditional server, as an operator types it over SSH: pull the code, install the
# requirements into the venv, migrate, restart the program.
set -eu
cd /srv/baseline/app
runuser -u app -- git pull --quiet
runuser -u app -- env PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
  /srv/baseline/venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
runuser -u app -- /srv/baseline/venv/bin/alembic upgrade head
supervisorctl restart baseline
