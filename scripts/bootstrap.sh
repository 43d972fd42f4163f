#!/usr/bin/env bash
# Create the virtualenv and install the pinned requirements (skipped when nothing changed).
# Usage: scripts/bootstrap.sh [dev]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      PY="$candidate"; break
    fi
  done
fi
if [ -z "$PY" ]; then
  echo "error: Python 3.11 is needed; install it (e.g. apt-get install python3.11 python3.11-venv) or set PYTHON" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "creating virtualenv .venv with $PY"
  "$PY" -m venv .venv
fi
want="requirements.txt"
[ "${1:-}" = "dev" ] && want="requirements-dev.txt"
stamp=".venv/.installed-$(basename "$want" .txt)"
digest=$(cat requirements.txt "$want" | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
  echo "installing $want into .venv"
  if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$want" >.venv/pip.log 2>&1; then
    grep -v "^WARNING: Location" .venv/pip.log | tail -20 >&2
    echo "error: installing $want failed (full log: .venv/pip.log)" >&2
    exit 1
  fi
  .venv/bin/python -c "import django, celery, channels, ccxt" || { echo "error: installing $want failed; see pip's output above" >&2; exit 1; }
  echo "$digest" > "$stamp"
fi
