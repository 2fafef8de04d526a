// Shared by deploy/'s tests: the installed tools, rendering an overlay, reading the output.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { missingTools, toolsDir } from '../scripts/validate-manifests.mjs';
import process from 'node:process';

const here = dirname(fileURLToPath(import.meta.url));
export const deployDir = resolve(here, '..');
export const repoRoot = resolve(deployDir, '..');
export const overlays = ['dev', 'production'];
export const kubectl = join(toolsDir, 'bin', 'kubectl');
export const validator = join(deployDir, 'scripts', 'validate-manifests.mjs');

/** Throws, with what to run, unless kubectl (kustomize) and the validator's packages are installed. */
export function requireTools() {
  const problems = [];
  if (!existsSync(kubectl)) problems.push(`kubectl (with kustomize) is not installed at ${kubectl}`);
  const missing = missingTools();
  if (missing) problems.push(missing);
  if (problems.length > 0) {
    throw new Error(`deploy tests need their tools: ${problems.join('; ')}. Install them with \`bash deploy/install-tools.sh\` (CI runs it in .ci/run).`);
  }
}

/** The rendered YAML of an overlay (kubectl kustomize). */
export function render(overlay) {
  requireTools();
  return execFileSync(kubectl, ['kustomize', join(deployDir, 'k8s', 'overlays', overlay)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs the validator CLI on files or on stdin text; returns { status, stdout, stderr }. */
export function validate(args, input) {
  const result = spawnSync(process.execPath, [validator, ...args], { input, encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

let yamlModule;
/** The documents of a multi-document YAML text, as plain objects. */
export async function parseDocuments(text) {
  requireTools();
  if (!yamlModule) {
    const dir = join(toolsDir, 'node_modules', 'yaml');
    yamlModule = await import(pathToFileURL(join(dir, JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).main)).href);
  }
  return yamlModule.parseAllDocuments(text).map((doc) => doc.toJS()).filter((doc) => doc != null);
}

/** Parses Go-style durations as the services do (10s, 5m, 24h, 1m30s), in seconds. */
export function seconds(duration) {
  const units = { ms: 0.001, s: 1, m: 60, h: 3600 };
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let consumed = '';
  for (const match of String(duration).matchAll(re)) {
    total += Number(match[1]) * units[match[2]];
    consumed += match[0];
  }
  if (consumed !== String(duration)) throw new Error(`not a duration: ${duration}`);
  return total;
}

export const byKind = (docs, kind) => docs.filter((doc) => doc.kind === kind);
export const find = (docs, kind, name) => docs.find((doc) => doc.kind === kind && doc.metadata?.name === name);

/** The environment a container gets from its ConfigMaps (envFrom) and its literal env values. */
export function environmentOf(docs, container) {
  const env = {};
  for (const source of container.envFrom ?? []) {
    const map = source.configMapRef && find(docs, 'ConfigMap', source.configMapRef.name);
    if (source.configMapRef && !map) throw new Error(`ConfigMap ${source.configMapRef.name} is not in the output`);
    Object.assign(env, map?.data ?? {});
  }
  for (const variable of container.env ?? []) if ('value' in variable) env[variable.name] = variable.value;
  return env;
}

export { execFileSync };
