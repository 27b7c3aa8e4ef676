#!/usr/bin/env bash
# Installs what the SIP interop tests need on a fresh Debian machine (run as root):
# sipp (Debian package sip-tester), baresip, sipsak, openssl (the call test's TLS certificates),
# and JsSIP + ws from package-lock.json into tests/interop/sip/node/node_modules (npm ci).
# The Kamailio anchor (calls.py --server kamailio, bench/call-load.sh) needs the packages
# kamailio and kamailio-postgres-modules too: `INSTALL_KAMAILIO=1 bash install.sh`.
# Node 20 and npm must already be there. Prints how long each part took.
#
#   bash tests/interop/sip/install.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
apt_packages=(sip-tester baresip sipsak openssl coreutils)
if [ "${INSTALL_KAMAILIO:-0}" = 1 ]; then
    apt_packages+=(kamailio kamailio-postgres-modules postgresql-client)
fi

missing=()
for package in "${apt_packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done
started=$SECONDS
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "install.sh: need root to install ${missing[*]}" >&2
        exit 1
    fi
    echo "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    echo "apt packages installed in $((SECONDS - started))s"
else
    echo "apt packages already installed"
fi

started=$SECONDS
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "install.sh: node and npm are required (Node 20)" >&2
    exit 1
fi
(cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error)
echo "npm ci (jssip, ws) in $((SECONDS - started))s"
