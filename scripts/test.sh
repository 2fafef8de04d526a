#!/usr/bin/env bash
# The whole test suite: install, make sure PostgreSQL and NATS are up, then build, lint and test every
# project (unit, integration and end-to-end) through nx.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/ensure-services.sh
export NX_DAEMON=false NX_NO_CLOUD=true
exec node_modules/.bin/nx run-many -t build lint test --output-style=stream "$@"
