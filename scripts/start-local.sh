#!/usr/bin/env bash
# Installs, builds and starts the whole system on local defaults: the four services against PostgreSQL
# (database "webhooks") and NATS with JetStream on this machine, and the webhooks portal with a demo
# workspace whose portal link it prints. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/ensure-services.sh
export NX_DAEMON=false NX_NO_CLOUD=true
node_modules/.bin/nx run-many -t build --projects='@webhooks/subscription,@webhooks/event-ingest,@webhooks/dispatcher,@webhooks/notifier,@webhooks/portal,@webhooks/cli' --output-style=static

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
for app in event-ingest dispatcher notifier portal; do
  "$node" "apps/$app/dist/main.js" &
  pids+=($!)
done

# The demo workspace: ADVANCED, so its admin can add webhooks. Upserting also waits for subscription to
# answer (it may still be migrating the database on a first start).
demo=${DEMO_WORKSPACE:-demo}
cli() { "$node" apps/cli/dist/main.js "$@"; }
for attempt in $(seq 1 60); do
  if cli workspace upsert "$demo" --name 'Demo workspace' --plan ADVANCED --email demo@example.com >/dev/null 2>/tmp/start-local-upsert.err; then break; fi
  if [ "$attempt" = 60 ]; then cat /tmp/start-local-upsert.err >&2; echo "subscription did not answer within a minute; see its log above" >&2; exit 1; fi
  sleep 1
done
rm -f /tmp/start-local-upsert.err
# A portal link for it, as the core product would get one (CreatePortalSession, 24 hours: the longest).
portal_url=$(DEMO_WORKSPACE="$demo" "$node" --input-type=module -e '
  import { WebhooksClient } from "@webhooks/client";
  const address = `127.0.0.1:${process.env.SUBSCRIPTION_GRPC_PORT ?? 50051}`;
  const client = new WebhooksClient({ subscriptionAddress: address, ingestAddress: address, token: process.env.WEBHOOKS_TOKEN ?? "local-dev-token" });
  try {
    const session = await client.createPortalSession({ workspaceId: process.env.DEMO_WORKSPACE, ttl: { seconds: 86400, nanos: 0 } });
    console.log(session.url);
  } finally {
    client.close();
  }
')

cat <<TXT

  subscription  127.0.0.1:${SUBSCRIPTION_GRPC_PORT:-50051}   (gRPC: SubscriptionService, DeliveryLogService)
  event-ingest  127.0.0.1:${INGEST_GRPC_PORT:-50052}   (gRPC: IngestService)
  dispatcher    127.0.0.1:${DISPATCHER_HEALTH_PORT:-50053}   (gRPC health)
  notifier      127.0.0.1:${NOTIFIER_HEALTH_PORT:-50054}   (gRPC health)
  portal        http://127.0.0.1:${PORTAL_HTTP_PORT:-8080}/   (the webhooks page; operators: a token from PORTAL_OPERATOR_TOKENS)
  token         local-dev-token
  try it:       npm run cli -- --help      (README: "Try it")

  The portal for workspace "$demo" (ADVANCED), valid for 24 hours; open it in a browser:
  $portal_url

TXT
wait
