#!/usr/bin/env bash
# Sets up a development environment in .venv: every distribution installed editable, plus
# the test and lint tools. Idempotent: a second run with nothing changed takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

python=""
for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        python="$candidate"
        break
    fi
done
if [ -z "$python" ]; then
    echo "setup: Python 3.11 or newer is needed (python3.11 not found)" >&2
    exit 1
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $("$python" --version)"
    "$python" -m venv .venv
fi

# System packages the audio stack and its tests need; installs only what is missing.
bash scripts/audio-deps.sh

# Reinstall only when what is installed could have changed.
stamp=.venv/.loom-setup
digest=$(cat requirements-dev.txt loom-*/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
    echo "setup: installing the distributions and tools into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r requirements-dev.txt
    echo "$digest" > "$stamp"
fi
# The bridge's TLS tests make a throwaway certificate with the openssl CLI.
if ! command -v openssl >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
fi

# The AssemblyScript WASM example's compiler (tests/wasm), from the npm registry.
if command -v npm >/dev/null 2>&1 && [ ! -x examples/wasm/as-reverse/node_modules/.bin/asc ]; then
    echo "setup: installing the AssemblyScript compiler for examples/wasm/as-reverse"
    npm ci --prefix examples/wasm/as-reverse --no-audit --no-fund --silent
fi

# MCP peers for the tests (npm packages in .mcp-peers/, mcp-server-time into .venv).
bash scripts/mcp-peers.sh

# Headless Chromium (Debian) and playwright for the dashboard's browser test.
bash scripts/browser-deps.sh

# NATS with JetStream on 127.0.0.1:4222 for loom-nats (installs Debian's nats-server if missing).
if [ "${CI:-}" = true ]; then
    bash scripts/nats-server.sh
else
    bash scripts/nats-server.sh || echo "setup: no NATS server; the nats tests will skip" >&2
fi

echo "setup: ready ($(.venv/bin/loom --version))"
