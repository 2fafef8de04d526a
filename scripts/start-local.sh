#!/usr/bin/env bash
# Installs, builds and starts the whole system on local defaults: the four services against PostgreSQL
# (database "webhooks") and NATS with JetStream on this machine. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/ensure-services.sh
export NX_DAEMON=false NX_NO_CLOUD=true
node_modules/.bin/nx run-many -t build --projects='@webhooks/subscription,@webhooks/event-ingest,@webhooks/dispatcher,@webhooks/notifier,@webhooks/cli' --output-style=static

node=node_modules/.bin/node
export PROFILE=${PROFILE:-local}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/webhooks}
"$node" -e '
  const pg = require("pg");
  const url = new URL(process.env.DATABASE_URL);
  const name = url.pathname.slice(1);
  url.pathname = "/postgres";
  const client = new pg.Client({ connectionString: url.toString() });
  client.connect()
    .then(() => client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]))
    .then((r) => r.rowCount ? null : client.query(`CREATE DATABASE "${name}"`))
    .finally(() => client.end());
'

pids=()
stop() {
  trap - INT TERM EXIT
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait
}
trap stop INT TERM EXIT

"$node" apps/subscription/dist/main.js &
pids+=($!)
# The others need the topology and routing table the control plane sets up; they create it themselves
# too, so the order only matters for a tidy log.
sleep 1
for app in event-ingest dispatcher notifier; do
  "$node" "apps/$app/dist/main.js" &
  pids+=($!)
done

cat <<TXT

  subscription  127.0.0.1:${SUBSCRIPTION_GRPC_PORT:-50051}   (gRPC: SubscriptionService, DeliveryLogService)
  event-ingest  127.0.0.1:${INGEST_GRPC_PORT:-50052}   (gRPC: IngestService)
  dispatcher    127.0.0.1:${DISPATCHER_HEALTH_PORT:-50053}   (gRPC health)
  notifier      127.0.0.1:${NOTIFIER_HEALTH_PORT:-50054}   (gRPC health)
  token         local-dev-token
  try it:       npm run cli -- --help      (README: "Try it")

TXT
wait
