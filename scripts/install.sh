#!/usr/bin/env bash
# Installs the dependencies (Node 24 comes with them, from the npm registry) when they are missing or
# older than package-lock.json.
set -euo pipefail
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
