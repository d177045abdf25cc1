#!/usr/bin/env bash
# Install the system packages speechllm's data preparation uses: espeak-ng (synthetic corpus).
# The real-speech and text sources are fetched later with `apt-get download` (no install needed).
#
# Usage: scripts/install_system_deps.sh
# Exits non-zero with a message saying what to do when it cannot install (no apt-get, not root
# and no sudo, or apt failure).
set -euo pipefail

PACKAGES=(espeak-ng)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if command -v "$pkg" >/dev/null 2>&1; then
        echo "install_system_deps: $pkg already installed ($(command -v "$pkg"))"
    else
        missing+=("$pkg")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install_system_deps: nothing to do"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_system_deps: ERROR: apt-get not found; install ${missing[*]} with your system's" \
        "package manager (e.g. 'brew install espeak-ng', 'dnf install espeak-ng')" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "install_system_deps: ERROR: installing ${missing[*]} needs root; run this script as root" \
        "or with passwordless sudo, or ask your administrator to run: apt-get install -y ${missing[*]}" >&2
    exit 1
fi

echo "install_system_deps: running: ${SUDO[*]:-} apt-get update"
if ! "${SUDO[@]}" apt-get update; then
    echo "install_system_deps: ERROR: 'apt-get update' failed (no network access to the Debian mirror?)" >&2
    exit 1
fi

echo "install_system_deps: running: ${SUDO[*]:-} apt-get install -y ${missing[*]}"
if ! DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y "${missing[@]}"; then
    echo "install_system_deps: ERROR: 'apt-get install -y ${missing[*]}' failed" >&2
    exit 1
fi

for pkg in "${missing[@]}"; do
    if ! command -v "$pkg" >/dev/null 2>&1; then
        echo "install_system_deps: ERROR: $pkg still not on PATH after installing" >&2
        exit 1
    fi
    echo "install_system_deps: installed $pkg ($(command -v "$pkg"))"
done
