#!/usr/bin/env bash
# The whole test suite: install, make sure PostgreSQL and NATS are up, then build, lint and test every
# project (unit, integration and end-to-end) through nx. Ends with one line adding up every project's
# test counts. In CI nothing is taken from nx's cache: every test runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash deploy/install-tools.sh
bash scripts/ensure-services.sh
# The portal's browser tests drive Debian's Chromium: installed here when missing (as root with apt).
bash scripts/ensure-chromium.sh
export NX_DAEMON=false NX_NO_CLOUD=true NO_COLOR=1 FORCE_COLOR=0
cache_flag=()
[ "${CI:-}" = "true" ] && cache_flag=(--skip-nx-cache)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
node_modules/.bin/nx run-many -t build lint test --output-style=stream "${cache_flag[@]}" "$@" 2>&1 | tee "$log" || status=$?
# The benchmarks are not a project; they are type-checked here so they keep compiling against the code,
# and their own tests (the direct step's socket bound) run here.
node_modules/.bin/tsc -p bench/tsconfig.json --noEmit || status=$?
node_modules/.bin/node --import tsx --test --test-reporter=spec 'bench/**/*.test.ts' 2>&1 | tee -a "$log" || status=$?
awk '/ℹ pass [0-9]+$/ { p += $NF } /ℹ fail [0-9]+$/ { f += $NF } /ℹ skipped [0-9]+$/ { s += $NF }
     END { if (p + f == 0) print "no test ran: every result came from the nx cache (add --skip-nx-cache to run them again)";
           else printf "%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
