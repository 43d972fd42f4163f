#!/usr/bin/env bash
# The run command: set everything up, then run every Procfile process (web, Celery worker, bot
# hosts, beat) under supervisord, which restarts any process that dies (scripts/run_procfile.py,
# docs/operations.md). Ctrl-C stops them all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-mmsite.settings.local}"
export PYTHONUNBUFFERED=1
# PostgreSQL and Redis: started if installed, installed with apt-get as root on Debian, or run as
# private instances under var/ (it says which; scripts/ensure_services.py --stop stops those).
.venv/bin/python scripts/ensure_services.py
.venv/bin/python manage.py check --fail-level ERROR >/dev/null || { .venv/bin/python manage.py check; exit 1; }
.venv/bin/python manage.py migrate --no-input >/dev/null
.venv/bin/python manage.py install_schedules
.venv/bin/python manage.py collectstatic --no-input >/dev/null
.venv/bin/python manage.py seed_demo
export HOST="${HOST:-127.0.0.1}" PORT="${PORT:-8000}"
if .venv/bin/python -c "import socket,sys; s=socket.socket(); sys.exit(0 if s.connect_ex(('$HOST', $PORT)) == 0 else 1)"; then
  echo "error: port $PORT on $HOST is already in use; set PORT to a free port, e.g. PORT=8001 make demo" >&2
  exit 1
fi
cat <<MSG

  MarketMakerSuite is starting at  http://$HOST:$PORT/
  Sign in as  demo / demo-trader-2026   (operator: ops / ops-operator-2026, admin at /admin/)
  Health: http://$HOST:$PORT/healthz   API docs: http://$HOST:$PORT/api/v1/docs/
  Logs: var/supervisor/log/<process>.log   A process that dies is started again.
  Press Ctrl-C to stop everything.

MSG
exec .venv/bin/python scripts/run_procfile.py
