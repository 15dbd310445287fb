#!/usr/bin/env bash
# Installs what the dashboard's browser test (tests/dashboard/test_browser.py) drives:
#   Debian's chromium          apt, when /usr/bin/chromium is missing (needs root or sudo)
#   playwright (Python), pinned into .venv: it drives that chromium through executable_path
# Playwright's own browser download (`playwright install`) is never run: the machine's
# network does not allow it, and the system chromium is what we test against.
# Idempotent: with both present it changes nothing and takes well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

playwright_pin="playwright==1.65.2"

if [ ! -x .venv/bin/python ]; then
    echo "browser-deps: .venv is missing; run scripts/setup.sh first" >&2
    exit 1
fi

if ! command -v chromium >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "browser-deps: chromium is missing and apt-get is not available; install chromium" >&2
        exit 1
    fi
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo="sudo"
        else
            echo "browser-deps: need root (or sudo) to install chromium" >&2
            exit 1
        fi
    fi
    echo "browser-deps: installing chromium (Debian)"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

want="${playwright_pin#*==}"
have=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("playwright"))' \
    2>/dev/null || true)
if [ "$have" != "$want" ]; then
    echo "browser-deps: installing $playwright_pin into .venv"
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 .venv/bin/python -m pip install --quiet "$playwright_pin"
fi

echo "browser-deps: ready ($(chromium --version 2>/dev/null | head -n1), playwright $want)"
