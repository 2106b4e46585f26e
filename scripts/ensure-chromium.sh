#!/usr/bin/env sh
# Make sure a headless Chromium is available for the report rendering test (tests/test_report.py).
# Installs Debian's `chromium` package when it is missing and we may (scripts/apt-install.sh);
# otherwise says how to install it and exits 0, and the test skips.
set -eu

for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then
        echo "chromium: $(command -v "$name")"
        exit 0
    fi
done

sh "$(dirname "$0")/apt-install.sh" chromium "the render test" || exit 0
command -v chromium
