#!/usr/bin/env bash
# Sets up (scripts/setup.sh), checks lint, types and generated code, and runs the whole test
# suite. Exits non-zero on any failure, including a pytest run that collected no tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/nats-server.sh --no-install  # restarts it if it died since setup

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (strict)"
.venv/bin/mypy
echo "== pytest"
# The tests import grpc before loom_bridge can quiet it (see loom_bridge/__init__.py).
export GRPC_VERBOSITY="${GRPC_VERBOSITY:-ERROR}"
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "test: pytest collected no tests; that is a failure" >&2
    exit 1
fi
exit "$status"
