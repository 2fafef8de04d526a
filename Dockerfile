# syntax=docker/dockerfile:1
# The webhook platform's application image: one image for the services, the portal and the database
# migration; the Kubernetes manifests choose the program with `args` (deploy/k8s). Build it from the
# repository root:
#   docker build -t webhook-platform:TAG .
#   docker run --rm webhook-platform:TAG apps/dispatcher/dist/main.js   # any entry point; default: subscription
# deploy/scripts/check-image-context.mjs checks this file against the repository (npm test in deploy/).

ARG NODE_IMAGE=node:24-slim

# ---- build: every dependency (nx, TypeScript, buf generate the contracts), build, then a fresh
# install of the production dependencies only (from npm's cache: no second download).
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV CI=true NX_DAEMON=false NX_NO_CLOUD=true
# Manifests first: the dependency layer is reused while only sources change. Every workspace's
# package.json must be here, or npm ci finds the lock file out of step.
COPY package.json package-lock.json .npmrc ./
COPY apps/cli/package.json apps/cli/
COPY apps/dispatcher/package.json apps/dispatcher/
COPY apps/event-ingest/package.json apps/event-ingest/
COPY apps/notifier/package.json apps/notifier/
COPY apps/portal/package.json apps/portal/
COPY apps/subscription/package.json apps/subscription/
COPY libs/client/package.json libs/client/
COPY libs/config/package.json libs/config/
COPY libs/contracts/package.json libs/contracts/
COPY libs/domain/package.json libs/domain/
COPY libs/grpc-kit/package.json libs/grpc-kit/
COPY libs/messaging/package.json libs/messaging/
COPY libs/telemetry/package.json libs/telemetry/
COPY libs/testing/package.json libs/testing/
COPY tests/e2e/package.json tests/e2e/
COPY deploy/package.json deploy/
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build \
 && npm ci --omit=dev --no-audit --no-fund

# ---- runtime: node:24-slim, production dependencies and built output only, no compiler, not root.
FROM ${NODE_IMAGE} AS runtime
# tini is PID 1: it hands SIGTERM to node and reaps zombies. Node as PID 1 would ignore SIGTERM
# wherever it has no handler of its own (the migration, a service still starting up); the services'
# own handlers then drain and exit 0 as they do outside a container.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
# Owned by root and not writable by the user the services run as.
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/apps/cli/package.json apps/cli/
COPY --from=build /app/apps/cli/dist apps/cli/dist
COPY --from=build /app/apps/dispatcher/package.json apps/dispatcher/
COPY --from=build /app/apps/dispatcher/dist apps/dispatcher/dist
COPY --from=build /app/apps/dispatcher/node_modules apps/dispatcher/node_modules
COPY --from=build /app/apps/event-ingest/package.json apps/event-ingest/
COPY --from=build /app/apps/event-ingest/dist apps/event-ingest/dist
COPY --from=build /app/apps/notifier/package.json apps/notifier/
COPY --from=build /app/apps/notifier/dist apps/notifier/dist
# The portal's server and, in dist/public, its built page (npm run build runs the Vite production build).
COPY --from=build /app/apps/portal/package.json apps/portal/
COPY --from=build /app/apps/portal/dist apps/portal/dist
COPY --from=build /app/apps/subscription/package.json apps/subscription/
COPY --from=build /app/apps/subscription/dist apps/subscription/dist
COPY --from=build /app/libs/client/package.json libs/client/
COPY --from=build /app/libs/client/dist libs/client/dist
COPY --from=build /app/libs/config/package.json libs/config/
COPY --from=build /app/libs/config/dist libs/config/dist
# The contracts' dist includes dist/proto, which gRPC reflection loads at run time.
COPY --from=build /app/libs/contracts/package.json libs/contracts/
COPY --from=build /app/libs/contracts/dist libs/contracts/dist
COPY --from=build /app/libs/domain/package.json libs/domain/
COPY --from=build /app/libs/domain/dist libs/domain/dist
COPY --from=build /app/libs/grpc-kit/package.json libs/grpc-kit/
COPY --from=build /app/libs/grpc-kit/dist libs/grpc-kit/dist
COPY --from=build /app/libs/messaging/package.json libs/messaging/
COPY --from=build /app/libs/messaging/dist libs/messaging/dist
COPY --from=build /app/libs/telemetry/package.json libs/telemetry/
COPY --from=build /app/libs/telemetry/dist libs/telemetry/dist
# Test helpers and the deploy tooling are not shipped; their package.json keeps the workspace links whole.
COPY --from=build /app/libs/testing/package.json libs/testing/
COPY --from=build /app/tests/e2e/package.json tests/e2e/
COPY --from=build /app/deploy/package.json deploy/
# The node user of the base image, by number so that Kubernetes can check runAsNonRoot.
USER 1000:1000
ENTRYPOINT ["/usr/bin/tini", "--", "node"]
CMD ["apps/subscription/dist/main.js"]
