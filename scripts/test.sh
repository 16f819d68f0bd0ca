#!/usr/bin/env bash
# Run the whole test suite with every service it needs, installed and started here (never assumed):
# headless Chromium for the map tests, PostgreSQL + PostGIS for the API tests. The package is
# linted (ruff) and type-checked (mypy, settings in pyproject.toml) first.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check geoalloc api
.venv/bin/mypy
bash scripts/install-browser.sh >&2
eval "$(bash scripts/postgres.sh start)"
trap 'bash scripts/postgres.sh stop >/dev/null 2>&1 || true' EXIT
.venv/bin/python -m pytest "$@"
