#!/usr/bin/env bash
# The test command: the same set-up, then the whole suite against real PostgreSQL and Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh dev
export DJANGO_SETTINGS_MODULE=mmsite.settings.test
# PostgreSQL and Redis: started if installed, installed with apt-get as root on Debian, or run as
# private instances under var/ (it says which; scripts/ensure_services.py --stop stops those).
.venv/bin/python scripts/ensure_services.py
# The browser tests drive Debian's chromium (never a downloaded browser). Install it when we can;
# otherwise tests/e2e skips with a loud message saying how to install it.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium for the browser tests (apt-get)..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >&2 \
      || echo "WARNING: chromium could not be installed; the e2e browser tests will be SKIPPED" >&2
  else
    echo "WARNING: chromium is missing and this is not root with apt-get; e2e browser tests will be SKIPPED" >&2
  fi
fi
# The monitoring profile of docker/compose.yml is checked with Compose (tests/workers/test_metrics.py):
# Debian's docker-compose when the docker CLI has no compose plugin. Node.js runs PGlite's
# TimescaleDB for tests/timescale.
need=()
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then need+=(docker-compose); fi
if ! command -v npm >/dev/null 2>&1; then need+=(nodejs npm); fi
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need[*]} for the compose and TimescaleDB tests (apt-get)..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}") >&2 \
      || echo "WARNING: ${need[*]} could not be installed; the tests needing them will be SKIPPED" >&2
  else
    echo "WARNING: ${need[*]} missing and this is not root with apt-get; the tests needing them will be SKIPPED" >&2
  fi
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check . >/dev/null || { .venv/bin/ruff format --check .; echo "ruff format: run .venv/bin/ruff format on the files above"; exit 1; }
exec .venv/bin/python -m pytest "$@"
