#!/usr/bin/env bash
# Debian's chromium, for the test that opens report.html in a headless browser (tests/test_report_outputs.py).
# `make test` runs this; it installs nothing where chromium is already on the PATH.
set -euo pipefail
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
echo "installing Debian's chromium for the report.html test (once) ..." >&2
$SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null \
    || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null; }
command -v chromium >/dev/null
