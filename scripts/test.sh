#!/usr/bin/env bash
# The test command: the same set-up, then the whole suite against real PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh dev
export DJANGO_SETTINGS_MODULE=mmsite.settings.test
.venv/bin/python scripts/ensure_services.py
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
