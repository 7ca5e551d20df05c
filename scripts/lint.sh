#!/usr/bin/env bash
# The linters CI runs before the tests. Usage: scripts/lint.sh (after scripts/install.sh --test)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
# Style and likely bugs (rules in pyproject.toml).
"$bin/ruff" check .
# Nothing newer than Python 3.10: rented GPU images often ship it.
"$bin/vermin" --target=3.10- --no-tips --violations --eval-annotations -q model dataset minimind_tui bench tests scripts
# Types, in mypy's default mode, over the core the trainer and the dashboard share.
"$bin/mypy" model dataset minimind_tui/runs
echo "lint: ruff, vermin and mypy passed" >&2
