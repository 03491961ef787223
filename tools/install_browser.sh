#!/usr/bin/env bash
# Chromium and its WebDriver from Debian's packages, for the web demo's browser test
# (tests/test_app.py). Does nothing when both are on PATH; runs apt-get as root, or through
# sudo for another user.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install_browser.sh: no apt-get here; install Chromium and a matching chromedriver" \
         "with your system's package manager (both must be on PATH)" >&2
    exit 1
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    as_root=(sudo)
fi
"${as_root[@]}" apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
