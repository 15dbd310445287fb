#!/usr/bin/env bash
# Installs the system packages loom-audio uses, when missing: espeak-ng (TTS fallback and test
# speech), libportaudio2 (sounddevice), pulseaudio + libasound2-plugins (a virtual microphone
# for the tests: a null sink and its monitor), sox and alsa-utils (tools). Idempotent: with
# everything present it runs no apt command; otherwise it runs `apt-get update` once.
# Needs root (or sudo) only when something is missing. Debian/Ubuntu only.
set -euo pipefail

packages=(espeak-ng libportaudio2 pulseaudio libasound2-plugins sox alsa-utils)

missing=()
for pkg in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "audio-deps: all present (${packages[*]})"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "audio-deps: apt-get not found; install these yourself: ${missing[*]}" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo="sudo"
    else
        echo "audio-deps: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi
echo "audio-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "audio-deps: installed ${missing[*]}"
