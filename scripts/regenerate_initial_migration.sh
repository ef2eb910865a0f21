#!/usr/bin/env bash
# Development helper while the schema is pre-release: rebuild the single initial migration
# from the models (autogenerate against an empty SQLite database). Once a release ships,
# add new revisions with `uv run alembic revision --autogenerate -m "..."` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f migrations/versions/*_0001_initial_schema.py
DATABASE_URL="sqlite+aiosqlite:///$tmp/empty.db" uv run alembic revision --autogenerate \
  --rev-id 0001 -m "initial schema" >/dev/null
uv run python scripts/finish_initial_migration.py migrations/versions/*_0001_initial_schema.py
uv run ruff format -q migrations/versions
rm -rf "$tmp"
echo "regenerated: $(ls migrations/versions/*_0001_initial_schema.py)"
