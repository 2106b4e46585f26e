#!/usr/bin/env sh
# Make sure a headless Chromium is available for the report rendering test (tests/test_report.py).
# Installs Debian's `chromium` package when it is missing and we may install system packages
# (CI=true, or running as root); otherwise says how to install it and exits 0, and the test skips.
set -eu

for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then
        echo "chromium: $(command -v "$name")"
        exit 0
    fi
done

if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium: missing and apt-get is unavailable; install Chromium to run the render test." >&2
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if [ "${CI:-}" = "true" ] && command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "chromium: missing; run 'sudo apt-get install chromium' to run the render test." >&2
        exit 0
    fi
fi

echo "chromium: installing Debian's chromium package"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium
