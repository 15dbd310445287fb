#!/usr/bin/env bash
# Installs the MCP peers the loom-mcp tests and bench talk to, all project-local:
#   .mcp-peers/node_modules   the npm servers (and the inspector CLI), pinned
#   .venv                     mcp-server-time from PyPI, pinned
# Nothing is installed globally. Idempotent: a second run with nothing changed takes
# well under a second. Without node/npm the npm peers are skipped with a message (the
# tests that need them skip and say why); LOOM_MCP_PEERS_REQUIRED=1 makes that an error.
set -euo pipefail
cd "$(dirname "$0")/.."

npm_peers=(
    "@modelcontextprotocol/server-everything@2026.8.31"
    "@modelcontextprotocol/server-filesystem@2026.8.31"
    "@modelcontextprotocol/inspector-cli@1.0.3"
)
pypi_peers=("mcp-server-time==2026.10.19")
prefix=.mcp-peers

if [ ! -x .venv/bin/python ]; then
    echo "mcp-peers: .venv is missing; run scripts/setup.sh first" >&2
    exit 1
fi

digest=$(printf '%s\n' "${npm_peers[@]}" "${pypi_peers[@]}" | sha256sum | cut -d' ' -f1)
stamp="$prefix/.installed"
if [ "$(cat "$stamp" 2>/dev/null)" = "$digest" ] \
    && [ -x "$prefix/node_modules/.bin/mcp-server-everything" ] \
    && [ -x .venv/bin/mcp-server-time ]; then
    echo "mcp-peers: ready (unchanged)"
    exit 0
fi

if ! .venv/bin/python -m pip install --quiet "${pypi_peers[@]}"; then
    echo "mcp-peers: pip could not install ${pypi_peers[*]}" >&2
    exit 1
fi

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    if [ "${LOOM_MCP_PEERS_REQUIRED:-0}" != "0" ]; then
        echo "mcp-peers: node and npm are needed for the npm MCP peers" >&2
        exit 1
    fi
    echo "mcp-peers: node/npm not found; npm peers skipped (their tests will skip)"
    exit 0
fi

mkdir -p "$prefix"
# A package.json of our own keeps npm from walking up to a parent project, and lets the
# inspector CLI (which wants one in its parent directory) run from inside the prefix.
if [ ! -f "$prefix/package.json" ]; then
    printf '{\n  "name": "loom-mcp-peers",\n  "private": true\n}\n' > "$prefix/package.json"
fi
npm install --prefix "$prefix" --no-audit --no-fund --save-exact --loglevel=error "${npm_peers[@]}"
echo "$digest" > "$stamp"
echo "mcp-peers: ready ($prefix/node_modules, $(node --version))"
