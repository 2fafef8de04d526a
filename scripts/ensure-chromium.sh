#!/usr/bin/env bash
# Makes sure Debian's Chromium is there for the portal's browser tests (Playwright drives it; no browser
# is ever downloaded by Playwright): installs it when missing and this runs as root with apt, otherwise
# prints the one command to run. CHROMIUM_PATH names another binary.
set -euo pipefail

if [ -n "${CHROMIUM_PATH:-}" ] && [ -x "$CHROMIUM_PATH" ]; then exit 0; fi
if command -v chromium >/dev/null 2>&1; then exit 0; fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Chromium for the portal's browser tests (apt-get install chromium)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; }
  command -v chromium >/dev/null 2>&1 && exit 0
fi
echo "Chromium is missing; the portal's browser tests need it. Install it with: sudo apt-get install -y chromium" >&2
exit 1
