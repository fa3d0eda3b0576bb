#!/bin/sh
# NOT part of the product: the benchmark's baseline. A traditional server set up the way
# the book does it by hand, once: Debian's Python, a git checkout of the app, a venv from
# requirements.txt, a .env file, Alembic, Gunicorn with Uvicorn workers under Supervisor,
# nginx with TLS in front. bench/bench.py (phase baseline) runs it in its own container,
# then times bench/baseline/redeploy.sh against the same app as the product's deploys.
#   sh setup.sh REPO_URL
set -eu
repo=$1
export DEBIAN_FRONTEND=noninteractive
update-ca-certificates >/dev/null
apt-get update -qq
apt-get install -y -qq --no-install-recommends python3-venv git supervisor nginx ssl-cert curl >/dev/null

id app >/dev/null 2>&1 || useradd --system --create-home --home-dir /srv/baseline --shell /bin/sh app
install -d -o app -g app /srv/baseline/data /run/baseline
runuser -u app -- git clone --quiet "$repo" /srv/baseline/app
runuser -u app -- python3 -m venv /srv/baseline/venv
runuser -u app -- env PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
  /srv/baseline/venv/bin/pip install --quiet --disable-pip-version-check -r /srv/baseline/app/requirements.txt
cat > /srv/baseline/app/.env <<'ENV'
ENVIRONMENT=test
DEBUG=false
DATABASE_URL=sqlite+aiosqlite:////srv/baseline/data/app.db
ENV
chown app:app /srv/baseline/app/.env
(cd /srv/baseline/app && runuser -u app -- /srv/baseline/venv/bin/alembic upgrade head >/dev/null)

cat > /etc/supervisor/conf.d/baseline.conf <<'CONF'
[program:baseline]
command=/srv/baseline/venv/bin/gunicorn --worker-class uvicorn_worker.UvicornWorker --workers 2 --bind unix:/run/baseline/app.sock app.main:app
directory=/srv/baseline/app
user=app
autostart=true
autorestart=true
stopsignal=TERM
stopwaitsecs=10
CONF
systemctl enable --now supervisor >/dev/null 2>&1
supervisorctl reread >/dev/null
supervisorctl update >/dev/null

rm -f /etc/nginx/sites-enabled/default
cat > /etc/nginx/sites-enabled/baseline <<'SITE'
server {
    listen 443 ssl;
    server_name localhost;
    ssl_certificate /etc/ssl/certs/ssl-cert-snakeoil.pem;
    ssl_certificate_key /etc/ssl/private/ssl-cert-snakeoil.key;
    location / {
        proxy_pass http://unix:/run/baseline/app.sock;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto https;
    }
}
SITE
nginx -t 2>/dev/null
systemctl enable nginx >/dev/null 2>&1
systemctl restart nginx

for _ in $(seq 1 50); do
  curl --silent --fail --insecure https://localhost/health >/dev/null && exit 0
  sleep 0.2
done
echo "the baseline app does not answer" >&2
exit 1
