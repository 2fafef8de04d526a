// Renders every overlay with kustomize (kubectl kustomize), validates the output against the
// Kubernetes API schemas (deploy/scripts/validate-manifests.mjs), proves the validator rejects a broken
// manifest, and checks the properties the platform relies on in what would be applied.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join, relative } from 'node:path';
import { before, describe, it } from 'node:test';
import { checkImageContext } from '../scripts/check-image-context.mjs';
import { byKind, deployDir, environmentOf, find, kubectl, overlays, parseDocuments, render, requireTools, seconds, validate } from './helpers.mjs';

const services = {
  subscription: { port: 50051, portVar: 'SUBSCRIPTION_GRPC_PORT', opsVar: 'SUBSCRIPTION_OPS_PORT', args: 'apps/subscription/dist/main.js', secrets: ['DATABASE_URL', 'API_TOKENS', 'SECRET_ENCRYPTION_KEY', 'PORTAL_SESSION_KEY'] },
  'event-ingest': { port: 50052, portVar: 'INGEST_GRPC_PORT', opsVar: 'INGEST_OPS_PORT', args: 'apps/event-ingest/dist/main.js', secrets: ['API_TOKENS'] },
  dispatcher: { port: 50053, portVar: 'DISPATCHER_HEALTH_PORT', opsVar: 'DISPATCHER_OPS_PORT', args: 'apps/dispatcher/dist/main.js', secrets: ['SECRET_ENCRYPTION_KEY'] },
  notifier: { port: 50054, portVar: 'NOTIFIER_HEALTH_PORT', opsVar: 'NOTIFIER_OPS_PORT', args: 'apps/notifier/dist/main.js', secrets: ['SMTP_URL', 'NOTIFIER_API_TOKEN'] },
  // The portal serves HTTP (the page and its API), not gRPC, and is only a gRPC client of subscription.
  portal: { port: 8080, portVar: 'PORTAL_HTTP_PORT', hostVar: 'PORTAL_HOST', opsVar: 'PORTAL_OPS_PORT', args: 'apps/portal/dist/main.js', secrets: ['PORTAL_API_TOKEN', 'PORTAL_SESSION_KEY', 'PORTAL_OPERATOR_TOKENS'] },
};
// The workloads that talk to NATS (the portal does not: every action goes through subscription).
const natsClients = ['subscription', 'event-ingest', 'dispatcher', 'notifier'];
// The Secrets deploy/README.md tells how to create: name -> key.
const documentedSecrets = { 'webhooks-database': 'DATABASE_URL', 'webhooks-api-tokens': 'API_TOKENS', 'webhooks-encryption-key': 'SECRET_ENCRYPTION_KEY', 'webhooks-smtp': 'SMTP_URL', 'webhooks-notifier-token': 'NOTIFIER_API_TOKEN', 'webhooks-portal-token': 'PORTAL_API_TOKEN', 'webhooks-portal-session-key': 'PORTAL_SESSION_KEY', 'webhooks-portal-operators': 'PORTAL_OPERATOR_TOKENS' };
const internalRanges = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.0.0/16', '127.0.0.0/8'];

describe('deploy tools', () => {
  it('are installed (kubectl with kustomize, the schema validator)', () => {
    requireTools();
  });
});

describe('the manifest validator', () => {
  it('rejects a Deployment with a wrong type and unknown fields', () => {
    requireTools();
    const result = validate([join(deployDir, 'test', 'fixtures', 'broken-deployment.yaml')]);
    assert.equal(result.status, 1, `the validator accepted a broken manifest:\n${result.stdout}${result.stderr}`);
    assert.match(result.stdout, /Deployment webhooks\/broken is invalid: \/spec\/replicas: must be integer/);
    assert.match(result.stdout, /\/spec\/replicaz: unknown field "replicaz"/);
    assert.match(result.stdout, /\/spec\/template\/spec\/containers\/0\/readinessProbe\/grpc\/prot: unknown field "prot"/);
    assert.match(result.stdout, /readinessProbe\/grpc: must have required property '?port'?/);
  });

  it('rejects a kind it has no schema for, YAML errors and documents that are no objects', () => {
    requireTools();
    const text = 'apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {A: "1", A: "2"}\n---\n- a list\n';
    const result = validate(['-'], text);
    assert.equal(result.status, 1, result.stdout);
    assert.match(result.stdout, /no schema for apiVersion "example.com\/v1", kind "Widget"/);
    assert.match(result.stdout, /Map keys must be unique/);
    assert.match(result.stdout, /not a Kubernetes object/);
  });

  it('accepts a valid Deployment', () => {
    requireTools();
    const result = validate([join(deployDir, 'test', 'fixtures', 'valid-deployment.yaml')]);
    assert.equal(result.status, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /Summary: 1 resources found - Valid: 1, Invalid: 0/);
  });
});

for (const overlay of overlays) {
  describe(`overlay ${overlay}`, () => {
    let yaml;
    let docs;
    before(async () => {
      requireTools();
      yaml = render(overlay);
      docs = await parseDocuments(yaml);
    });

    it('renders with kustomize and is valid against the Kubernetes API schemas (unknown fields rejected)', () => {
      const dir = mkdtempSync(join(tmpdir(), 'deploy-render-'));
      try {
        const file = join(dir, `${overlay}.yaml`);
        writeFileSync(file, yaml);
        const result = validate(['--quiet', file]);
        assert.equal(result.status, 0, `kubectl kustomize deploy/k8s/overlays/${overlay} | validate-manifests:\n${result.stdout}${result.stderr}`);
        assert.match(result.stdout, new RegExp(`Summary: ${docs.length} resources found - Valid: ${docs.length}, Invalid: 0`));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('has every part: Deployments, Services, the migration Job, NATS, PDBs, HPAs, NetworkPolicies, ConfigMaps', () => {
      const names = (kind) => byKind(docs, kind).map((doc) => doc.metadata.name).sort();
      assert.deepEqual(names('Deployment'), ['dispatcher', 'event-ingest', 'notifier', 'portal', 'subscription']);
      assert.deepEqual(names('Service'), ['event-ingest', 'nats', 'nats-headless', 'portal', 'subscription']);
      assert.deepEqual(names('Job'), ['subscription-migrate']);
      assert.deepEqual(names('StatefulSet'), ['nats']);
      assert.deepEqual(names('PodDisruptionBudget'), ['dispatcher', 'event-ingest', 'nats', 'notifier', 'portal', 'subscription']);
      assert.deepEqual(names('HorizontalPodAutoscaler'), ['dispatcher', 'event-ingest']);
      assert.ok(names('NetworkPolicy').includes('default-deny-all'));
      assert.equal(byKind(docs, 'Secret').length, 0, 'no Secret (and no secret value) belongs in the repository');
    });

    it('puts everything in namespace webhooks with the platform labels', () => {
      for (const doc of docs) {
        const id = `${doc.kind} ${doc.metadata.name}`;
        if (doc.kind === 'Namespace') assert.equal(doc.metadata.name, 'webhooks');
        else assert.equal(doc.metadata.namespace, 'webhooks', id);
        assert.equal(doc.metadata.labels?.['app.kubernetes.io/part-of'], 'webhook-platform', id);
        if (doc.kind !== 'ConfigMap' && !(doc.kind === 'NetworkPolicy' && !doc.spec.podSelector.matchLabels)) assert.ok(doc.metadata.labels?.['app.kubernetes.io/name'], `${id} has no app.kubernetes.io/name`);
      }
    });

    it('names the application image through the overlay (no placeholder name, no :latest)', () => {
      for (const kind of ['Deployment', 'Job', 'StatefulSet']) {
        for (const doc of byKind(docs, kind)) {
          for (const container of doc.spec.template.spec.containers) {
            assert.match(container.image, /^[a-z0-9.-]+(:\d+)?\/[a-z0-9/._-]+(:[\w.-]+|@sha256:[0-9a-f]{64})$|^nats:[\w.-]+$/, `${kind} ${doc.metadata.name}: ${container.image}`);
            assert.doesNotMatch(container.image, /:latest$/, `${kind} ${doc.metadata.name}`);
          }
        }
      }
      const nats = find(docs, 'StatefulSet', 'nats').spec.template.spec.containers[0].image;
      const [major, minor] = /^nats:(\d+)\.(\d+)/.exec(nats).slice(1).map(Number);
      assert.ok(major > 2 || (major === 2 && minor >= 11), `NATS ${nats} is older than 2.11`);
    });

    for (const [name, service] of Object.entries(services)) {
      it(`runs ${name} as it must (probes, resources, security, spread, termination, configuration)`, () => {
        const deployment = find(docs, 'Deployment', name);
        const pod = deployment.spec.template.spec;
        const [container] = pod.containers;
        assert.deepEqual(container.args, [service.args]);
        // The gRPC port as configured; HTTP probes on the operations port (gRPC probes cannot do TLS).
        const env = environmentOf(docs, container);
        assert.equal(env[service.portVar], String(service.port));
        assert.equal(env[service.hostVar ?? 'GRPC_HOST'], '0.0.0.0');
        assert.ok(container.ports.some((port) => port.containerPort === service.port));
        const ops = container.ports.find((port) => port.name === 'ops');
        assert.ok(ops, `${name} names no ops port`);
        assert.equal(String(ops.containerPort), env[service.opsVar], `${name}: the ops port is not ${service.opsVar}`);
        for (const [probe, path] of [['readinessProbe', '/readyz'], ['livenessProbe', '/healthz'], ['startupProbe', '/healthz']]) {
          assert.deepEqual(container[probe]?.httpGet, { path, port: 'ops' }, `${name} ${probe}`);
        }
        // Requests and limits.
        for (const resource of ['cpu', 'memory']) {
          assert.ok(container.resources?.requests?.[resource], `${name} requests ${resource}`);
          assert.ok(container.resources?.limits?.[resource], `${name} limits ${resource}`);
        }
        // Security.
        assert.equal(pod.securityContext.runAsNonRoot, true);
        assert.ok(pod.securityContext.runAsUser > 0);
        assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
        assert.equal(container.securityContext.allowPrivilegeEscalation, false);
        assert.equal(container.securityContext.readOnlyRootFilesystem, true);
        assert.deepEqual(container.securityContext.capabilities.drop, ['ALL']);
        assert.equal(pod.automountServiceAccountToken, false);
        // Spread across nodes.
        assert.ok(pod.topologySpreadConstraints?.some((c) => c.topologyKey === 'kubernetes.io/hostname' && c.labelSelector.matchLabels['app.kubernetes.io/name'] === name));
        // Graceful termination: the pod's grace outlasts preStop + SHUTDOWN_GRACE + the service's 5 s margin.
        const preStop = container.lifecycle?.preStop?.sleep?.seconds ?? 0;
        assert.ok(pod.terminationGracePeriodSeconds > preStop + seconds(env.SHUTDOWN_GRACE) + 5, `${name}: terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} <= ${preStop} + ${env.SHUTDOWN_GRACE} + 5 s`);
        if (name === 'dispatcher') assert.ok(pod.terminationGracePeriodSeconds > seconds(env.SHUTDOWN_GRACE) + seconds(env.ATTEMPT_TIMEOUT));
        // Secrets by reference only, to the documented Secrets.
        const refs = (container.env ?? []).filter((variable) => variable.valueFrom?.secretKeyRef);
        assert.deepEqual(refs.map((variable) => variable.name).sort(), [...service.secrets].sort());
        for (const variable of refs) assert.equal(documentedSecrets[variable.valueFrom.secretKeyRef.name], variable.valueFrom.secretKeyRef.key, `${name} ${variable.name}`);
        if (name === 'notifier') {
          // Without SMTP the notices go to the outbox folder, so the Secret may be missing; the token may not.
          assert.equal(refs.find((r) => r.name === 'SMTP_URL').valueFrom.secretKeyRef.optional, true);
          assert.notEqual(refs.find((r) => r.name === 'NOTIFIER_API_TOKEN').valueFrom.secretKeyRef.optional, true);
          assert.equal(env.SUBSCRIPTION_ADDRESS, 'subscription:50051');
        }
        if (name === 'portal') {
          // Operator tokens are optional; the API token and the session key are not.
          assert.equal(refs.find((r) => r.name === 'PORTAL_OPERATOR_TOKENS').valueFrom.secretKeyRef.optional, true);
          for (const required of ['PORTAL_API_TOKEN', 'PORTAL_SESSION_KEY']) assert.notEqual(refs.find((r) => r.name === required).valueFrom.secretKeyRef.optional, true, required);
          assert.equal(env.SUBSCRIPTION_ADDRESS, 'subscription:50051');
          assert.ok(env.PORTAL_FRAME_ANCESTORS, 'the core product must be allowed to frame the portal');
          assert.equal(find(docs, 'Service', 'portal').spec.ports[0].port, service.port);
        }
        assert.ok(env.OTEL_EXPORTER_OTLP_ENDPOINT, `${name} has no OTEL_EXPORTER_OTLP_ENDPOINT`);
        assert.equal(env.OTEL_SERVICE_NAME, name);
        if (natsClients.includes(name)) assert.equal(env.NATS_URL, 'nats://nats:4222');
      });
    }

    it('gives subscription what its portal RPCs need: the portal\'s address, the session key the portal verifies with, the dispatcher\'s breaker', () => {
      const subscription = find(docs, 'Deployment', 'subscription').spec.template.spec.containers[0];
      const portal = find(docs, 'Deployment', 'portal').spec.template.spec.containers[0];
      const env = environmentOf(docs, subscription);
      const dispatcherEnv = environmentOf(docs, find(docs, 'Deployment', 'dispatcher').spec.template.spec.containers[0]);
      // GetBreakerState reads the dispatcher's window: the same threshold and length, or the portal misreports it.
      assert.equal(env.BREAKER_THRESHOLD, dispatcherEnv.BREAKER_THRESHOLD);
      assert.equal(env.BREAKER_WINDOW, dispatcherEnv.BREAKER_WINDOW);
      assert.ok(env.BREAKER_THRESHOLD && env.BREAKER_WINDOW);
      assert.match(env.PORTAL_URL, overlay === 'production' ? /^https:\/\// : /^https?:\/\//);
      const keyOf = (container) => container.env.find((variable) => variable.name === 'PORTAL_SESSION_KEY').valueFrom.secretKeyRef;
      assert.deepEqual(keyOf(subscription), keyOf(portal), 'subscription signs the links with the key the portal verifies them with');
    });

    it('keeps the migration in the Job (MIGRATE_ON_START=false) and the Job needs DATABASE_URL only', () => {
      const env = environmentOf(docs, find(docs, 'Deployment', 'subscription').spec.template.spec.containers[0]);
      assert.equal(env.MIGRATE_ON_START, 'false');
      const job = find(docs, 'Job', 'subscription-migrate');
      const [container] = job.spec.template.spec.containers;
      assert.deepEqual(container.args, ['apps/subscription/dist/migrate.js']);
      assert.deepEqual(container.env.map((variable) => variable.name), ['DATABASE_URL']);
      assert.equal(container.env[0].valueFrom.secretKeyRef.name, 'webhooks-database');
      assert.equal(container.securityContext.readOnlyRootFilesystem, true);
      assert.equal(job.spec.template.spec.securityContext.runAsNonRoot, true);
    });

    it('runs entry points the image has after npm run build', () => {
      const { problems, image } = checkImageContext();
      assert.ok(image, problems.join('\n'));
      for (const kind of ['Deployment', 'Job']) {
        for (const doc of byKind(docs, kind)) {
          const [entry] = doc.spec.template.spec.containers[0].args;
          assert.ok(image.provides(entry), `${kind} ${doc.metadata.name} runs ${entry}, which the image does not have`);
        }
      }
    });

    it('keeps the dispatcher at two replicas at least, the autoscaler owning the count', () => {
      for (const name of ['dispatcher', 'event-ingest']) {
        const hpa = find(docs, 'HorizontalPodAutoscaler', name);
        assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name });
        assert.equal(find(docs, 'Deployment', name).spec.replicas, undefined, `${name}: spec.replicas would fight the autoscaler on every apply`);
        assert.ok(hpa.spec.maxReplicas >= hpa.spec.minReplicas);
      }
      assert.ok(find(docs, 'HorizontalPodAutoscaler', 'dispatcher').spec.minReplicas >= 2);
      for (const pdb of byKind(docs, 'PodDisruptionBudget')) {
        const name = pdb.metadata.name;
        const target = find(docs, 'Deployment', name) ?? find(docs, 'StatefulSet', name);
        assert.deepEqual(pdb.spec.selector.matchLabels, target.spec.selector.matchLabels);
      }
    });

    it('runs NATS with JetStream on persistent volumes, its replicas matching NATS_REPLICAS and the cluster routes', () => {
      const nats = find(docs, 'StatefulSet', 'nats');
      const replicas = nats.spec.replicas;
      const common = byKind(docs, 'ConfigMap').find((map) => map.metadata.name.startsWith('webhooks-common-'));
      assert.equal(Number(common.data.NATS_REPLICAS), replicas, 'JetStream stream replicas must equal the number of servers');
      assert.equal(replicas, overlay === 'production' ? 3 : 1);
      assert.equal(nats.spec.volumeClaimTemplates[0].metadata.name, 'data');
      assert.ok(nats.spec.template.spec.containers[0].volumeMounts.some((mount) => mount.name === 'data' && mount.mountPath === '/data'));
      const configName = nats.spec.template.spec.volumes.find((volume) => volume.name === 'config').configMap.name;
      const conf = find(docs, 'ConfigMap', configName).data['nats.conf'];
      assert.match(conf, /jetstream\s*\{[^}]*store_dir:\s*\/data/);
      const routes = [...conf.matchAll(/nats:\/\/(nats-\d+)\.nats-headless:6222/g)].map((match) => match[1]);
      if (replicas > 1) assert.deepEqual(routes, Array.from({ length: replicas }, (_, i) => `nats-${i}`));
      else assert.doesNotMatch(conf, /cluster\s*\{/);
      const headless = find(docs, 'Service', 'nats-headless');
      assert.equal(nats.spec.serviceName, 'nats-headless');
      assert.equal(headless.spec.clusterIP, 'None');
    });

    it('uses the production profile in production and keeps endpoints public and https-only there', () => {
      const common = byKind(docs, 'ConfigMap').find((map) => map.metadata.name.startsWith('webhooks-common-'));
      assert.equal(common.data.PROFILE, overlay === 'production' ? 'production' : 'local');
      if (overlay === 'production') {
        for (const name of ['subscription', 'dispatcher']) {
          const env = environmentOf(docs, find(docs, 'Deployment', name).spec.template.spec.containers[0]);
          assert.equal(env.ALLOW_HTTP_ENDPOINTS, 'false');
          assert.equal(env.ALLOWED_ENDPOINT_HOSTS, '');
        }
      }
    });

    it('serves gRPC over TLS wherever the profile is production, from each service\'s mounted certificate Secret', () => {
      for (const name of Object.keys(services)) {
        const pod = find(docs, 'Deployment', name).spec.template.spec;
        const [container] = pod.containers;
        const env = environmentOf(docs, container);
        if (env.PROFILE !== 'production') {
          // The local profile may serve plaintext; dev does.
          assert.equal(env.GRPC_TLS_CERT_FILE, undefined, `${name} in ${overlay}`);
          continue;
        }
        if (env.GRPC_PLAINTEXT_BEHIND_MESH === 'true') continue;
        const mountOf = (path) => (container.volumeMounts ?? []).find((mount) => path?.startsWith(`${mount.mountPath}/`));
        // The portal serves no gRPC: it only calls subscription, trusting the CA of its own Secret.
        const variables = name === 'portal' ? ['SUBSCRIPTION_TLS_CA_FILE'] : ['GRPC_TLS_CERT_FILE', 'GRPC_TLS_KEY_FILE', ...(name === 'notifier' ? ['SUBSCRIPTION_TLS_CA_FILE'] : [])];
        for (const variable of variables) {
          const mount = mountOf(env[variable]);
          assert.ok(mount, `${name}: ${variable}=${env[variable]} is not in a mounted volume; the service would refuse to start`);
          assert.equal(mount.readOnly, true);
          const volume = pod.volumes.find((v) => v.name === mount.name);
          assert.equal(volume.secret?.secretName, `${name}-grpc-tls`, `${name}: ${variable} comes from Secret ${name}-grpc-tls`);
        }
        const volume = pod.volumes.find((v) => v.secret?.secretName === `${name}-grpc-tls`);
        assert.equal(volume.secret.defaultMode & 0o007, 0, `${name}: the key must not be world-readable`);
        assert.equal(pod.securityContext.fsGroup, pod.securityContext.runAsGroup, `${name}: the service's group must be able to read the key`);
      }
      if (overlay === 'production') {
        for (const name of ['subscription', 'event-ingest']) assert.equal(find(docs, 'Service', name).spec.ports[0].appProtocol, 'https');
      }
    });

    it('allows only the traffic the platform needs (NetworkPolicies)', () => {
      const policy = (name) => find(docs, 'NetworkPolicy', name);
      const deny = policy('default-deny-all');
      assert.deepEqual(deny.spec.podSelector, {});
      assert.deepEqual(deny.spec.policyTypes.sort(), ['Egress', 'Ingress']);
      assert.equal(deny.spec.ingress, undefined);
      assert.equal(deny.spec.egress, undefined);
      const dns = policy('allow-dns').spec.egress[0];
      assert.equal(dns.to[0].namespaceSelector.matchLabels['kubernetes.io/metadata.name'], 'kube-system');
      assert.deepEqual(dns.ports.map((port) => `${port.protocol}/${port.port}`).sort(), ['TCP/53', 'UDP/53']);
      // The public APIs: from the core product's namespace only (and the notifier for subscription).
      for (const [name, port] of [['subscription', 50051], ['event-ingest', 50052]]) {
        const rules = policy(name).spec.ingress;
        const fromNamespaces = rules.filter((rule) => rule.from.some((peer) => peer.namespaceSelector));
        assert.equal(fromNamespaces.length, 1, name);
        assert.deepEqual(fromNamespaces[0].ports, [{ protocol: 'TCP', port }]);
        assert.equal(fromNamespaces[0].from.length, 1);
        assert.equal(fromNamespaces[0].from[0].podSelector, undefined);
        const selector = fromNamespaces[0].from[0].namespaceSelector.matchLabels;
        if (overlay === 'production') assert.deepEqual(selector, { 'kubernetes.io/metadata.name': 'core-product' });
        else assert.deepEqual(selector, { 'webhooks.io/core-product': 'true' });
        const callers = rules.filter((rule) => rule !== fromNamespaces[0]).map((rule) => {
          assert.deepEqual(rule.ports, [{ protocol: 'TCP', port }]);
          assert.equal(rule.from.length, 1);
          assert.deepEqual(Object.keys(rule.from[0]), ['podSelector']);
          return rule.from[0].podSelector.matchLabels['app.kubernetes.io/name'];
        });
        assert.deepEqual(callers.sort(), name === 'subscription' ? ['notifier', 'portal'] : [], `${name}: only these besides the core product`);
      }
      // The portal: its HTTP port from the core product's namespace and the ingress controller's; out to
      // subscription's API only.
      const portal = policy('portal').spec;
      for (const rule of portal.ingress) {
        assert.deepEqual(rule.ports, [{ protocol: 'TCP', port: 8080 }]);
        assert.deepEqual(Object.keys(rule.from[0]), ['namespaceSelector']);
      }
      assert.equal(portal.ingress.length, 2);
      assert.deepEqual(portal.ingress[0].from[0].namespaceSelector, policy('subscription').spec.ingress[0].from[0].namespaceSelector, 'the same core product namespace as the APIs');
      assert.deepEqual(portal.egress, [{ to: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'subscription' } } }], ports: [{ protocol: 'TCP', port: 50051 }] }]);
      assert.ok(policy('allow-otlp-export').spec.podSelector.matchExpressions[0].values.includes('portal'));
      // The dispatcher: NATS, and the internet on 80/443 but no internal range.
      const dispatcher = policy('dispatcher').spec;
      assert.equal(dispatcher.ingress, undefined);
      const internet = dispatcher.egress.find((rule) => rule.to.some((peer) => peer.ipBlock));
      assert.deepEqual(internet.ports.map((port) => port.port).sort(), [443, 80]);
      assert.equal(internet.to[0].ipBlock.cidr, '0.0.0.0/0');
      assert.deepEqual([...internet.to[0].ipBlock.except].sort(), [...internalRanges].sort());
      assert.equal(dispatcher.egress.length, 2);
      // The notifier: subscription 50051, NATS 4222, SMTP outside.
      const notifierPorts = policy('notifier').spec.egress.flatMap((rule) => rule.ports.map((port) => port.port)).sort((a, b) => a - b);
      assert.deepEqual(notifierPorts, [25, 465, 587, 4222, 50051]);
      // NATS takes clients from the four services only.
      const natsIngress = policy('nats').spec.ingress[0];
      assert.deepEqual(natsIngress.from[0].podSelector.matchExpressions[0].values.sort(), [...natsClients].sort());
    });
  });
}

describe('the cert-manager and mutual TLS components (production with both)', () => {
  let text;
  let docs;

  before(async () => {
    requireTools();
    // An overlay as an operator would write it: production plus the optional components.
    const dir = mkdtempSync(join(tmpdir(), 'overlay-'));
    try {
      const from = (path) => relative(dir, join(deployDir, 'k8s', path));
      writeFileSync(join(dir, 'kustomization.yaml'), [
        'apiVersion: kustomize.config.k8s.io/v1beta1', 'kind: Kustomization', 'namespace: webhooks',
        'resources:', `  - ${from('overlays/production')}`,
        'components:', `  - ${from('components/cert-manager')}`, `  - ${from('components/grpc-mtls')}`, '',
      ].join('\n'));
      text = execFileSync(kubectl, ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    docs = await parseDocuments(text);
  });

  it('renders resources that validate (cert-manager\'s own kinds aside, which have no built-in schema)', () => {
    const builtIn = text.split(/^---$/m).filter((doc) => !/^apiVersion: cert-manager\.io\//m.test(doc)).join('---\n');
    const dir = mkdtempSync(join(tmpdir(), 'rendered-'));
    try {
      writeFileSync(join(dir, 'rendered.yaml'), builtIn);
      const result = validate([join(dir, 'rendered.yaml')]);
      assert.equal(result.status, 0, result.stdout + result.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('issues each service the Secret it mounts, with the names its clients use, from an Issuer it renders', () => {
    const certificates = byKind(docs, 'Certificate');
    const issuers = new Set(byKind(docs, 'Issuer').map((issuer) => issuer.metadata.name));
    const notifierEnv = environmentOf(docs, find(docs, 'Deployment', 'notifier').spec.template.spec.containers[0]);
    const subscriptionHost = notifierEnv.SUBSCRIPTION_ADDRESS.replace(/:\d+$/, '');
    for (const name of Object.keys(services)) {
      const pod = find(docs, 'Deployment', name).spec.template.spec;
      const secretName = pod.volumes.find((v) => v.name === 'grpc-tls').secret.secretName;
      const certificate = certificates.find((c) => c.spec.secretName === secretName);
      assert.ok(certificate, `no Certificate writes Secret ${secretName}`);
      assert.equal(certificate.apiVersion, 'cert-manager.io/v1');
      assert.equal(certificate.metadata.namespace, 'webhooks');
      assert.ok(issuers.has(certificate.spec.issuerRef.name), `${name}: Issuer ${certificate.spec.issuerRef.name} is not rendered`);
      assert.ok(certificate.spec.dnsNames.includes(name) && certificate.spec.dnsNames.includes(`${name}.webhooks.svc`), `${name}: ${certificate.spec.dnsNames}`);
      // The portal is a client only (of subscription); the others serve gRPC.
      assert.ok(certificate.spec.usages.includes(name === 'portal' ? 'client auth' : 'server auth'), `${name}: ${certificate.spec.usages}`);
      if (name === 'subscription') assert.ok(certificate.spec.dnsNames.includes(subscriptionHost), `SUBSCRIPTION_ADDRESS host ${subscriptionHost} is not in the certificate`);
      if (name === 'notifier') assert.ok(certificate.spec.usages.includes('client auth'), 'the notifier shows its certificate to subscription under mutual TLS');
      // Mutual TLS: the client CA is the CA file of the same mounted Secret (cert-manager writes ca.crt).
      const env = environmentOf(docs, pod.containers[0]);
      assert.equal(env.GRPC_TLS_CLIENT_CA_FILE, '/etc/webhooks/grpc-tls/ca.crt');
    }
    assert.equal(notifierEnv.SUBSCRIPTION_TLS_CERT_FILE, '/etc/webhooks/grpc-tls/tls.crt');
    const portalEnv = environmentOf(docs, find(docs, 'Deployment', 'portal').spec.template.spec.containers[0]);
    assert.equal(portalEnv.SUBSCRIPTION_TLS_CERT_FILE, '/etc/webhooks/grpc-tls/tls.crt', 'the portal shows its certificate to subscription under mutual TLS');
  });
});

describe('deploy/README.md', () => {
  it('documents the secrets, the overlays and the validation commands', () => {
    const readme = readFileSync(join(deployDir, 'README.md'), 'utf8');
    for (const [secret, key] of Object.entries(documentedSecrets)) assert.match(readme, new RegExp(`kubectl -n webhooks create secret generic ${secret} --from-literal=${key}=`));
    for (const overlay of overlays) assert.match(readme, new RegExp(`kubectl apply -k deploy/k8s/overlays/${overlay}`));
    assert.match(readme, /bash deploy\/install-tools\.sh/);
    assert.match(readme, /SECRET_ENCRYPTION_KEY/);
    for (const name of Object.keys(services)) assert.match(readme, new RegExp(`\`${name}-grpc-tls\``), `the certificate Secret of ${name}`);
    for (const component of ['grpc-tls', 'grpc-mtls', 'cert-manager']) assert.match(readme, new RegExp(`components/${component}`));
  });
});
