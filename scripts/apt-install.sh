#!/usr/bin/env sh
# Install one Debian package when we may install system packages (running as root, or CI=true
# with sudo). Usage: apt-install.sh PACKAGE PURPOSE. Exits 0 once installed; otherwise says on
# stderr how to install it and exits 1, so that the caller can let its tests skip.
# Everything goes to stderr: callers print their own results on stdout.
set -eu
PKG="$1"
PURPOSE="$2"

if ! command -v apt-get >/dev/null 2>&1; then
    echo "$PKG: missing and apt-get is unavailable; install $PKG to run $PURPOSE." >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if [ "${CI:-}" = "true" ] && command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "$PKG: missing; run 'sudo apt-get install $PKG' to run $PURPOSE." >&2
        exit 1
    fi
fi
echo "$PKG: installing Debian's $PKG package" >&2
$SUDO apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$PKG" >/dev/null
