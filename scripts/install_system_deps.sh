#!/usr/bin/env bash
# Install the system packages speechllm's data preparation uses: the synthetic corpus's speech
# engines, espeak-ng, festival (with its English and Italian voices) and flite
# (speechllm/prepare/voices.py). The real-speech and text sources are fetched later with
# `apt-get download` (no install needed).
#
# Usage: scripts/install_system_deps.sh
# Exits non-zero with a message saying what to do when it cannot install (no apt-get, not root
# and no sudo, or apt failure).
set -euo pipefail

PACKAGES=(espeak-ng festival flite festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
    festvox-italp16k festvox-itapc16k)

installed() {  # a package is there when dpkg says so (or, without dpkg, its command is on PATH)
    if command -v dpkg-query >/dev/null 2>&1; then
        [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
    else
        command -v "$1" >/dev/null 2>&1
    fi
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    if installed "$pkg"; then
        echo "install_system_deps: $pkg already installed"
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
    if ! installed "$pkg"; then
        echo "install_system_deps: ERROR: $pkg still not installed after apt-get install" >&2
        exit 1
    fi
    echo "install_system_deps: installed $pkg"
done
