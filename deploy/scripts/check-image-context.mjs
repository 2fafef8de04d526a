#!/usr/bin/env node
// Checks the root Dockerfile against the repository, as far as can be done without a container
// engine: run it after `npm run build`.
//   - every COPY from the build context names files that exist and that .dockerignore lets through,
//     and the context holds what `npm ci` and `npm run build` read (`COPY . .`);
//   - every workspace's package.json is copied before `npm ci` and into the final image;
//   - every COPY --from=<stage> names something the build stage has after `npm run build` (the
//     repository after a build stands in for it: dist/, libs/contracts/dist/proto, node_modules);
//   - the final image has the built output of every service and of each @webhooks/* library they load,
//     and every workspace node_modules folder the lock file installs for production;
//   - ENTRYPOINT and CMD are in exec form (so the signal goes to tini/node, not a shell) and the entry
//     point they name is in the final image; the final stage runs as a numeric, non-root user on node:24-slim.
// Usage: node deploy/scripts/check-image-context.mjs [--dockerfile PATH] [--dockerignore PATH] [--root DIR]
// Exit code 0 when everything holds, 1 otherwise (each problem on its own line).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import console from 'node:console';
import process from 'node:process';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '..', '..');

/** The four services and the portal, each one's package directory and entry points (the portal's page too). */
export const services = {
  subscription: { dir: 'apps/subscription', entryPoints: ['apps/subscription/dist/main.js', 'apps/subscription/dist/migrate.js'] },
  'event-ingest': { dir: 'apps/event-ingest', entryPoints: ['apps/event-ingest/dist/main.js'] },
  dispatcher: { dir: 'apps/dispatcher', entryPoints: ['apps/dispatcher/dist/main.js'] },
  notifier: { dir: 'apps/notifier', entryPoints: ['apps/notifier/dist/main.js'] },
  portal: { dir: 'apps/portal', entryPoints: ['apps/portal/dist/main.js', 'apps/portal/dist/public/index.html'] },
};

// ---------------------------------------------------------------------------------------------
// Dockerfile

/** Instructions with their arguments, line continuations joined, comments and parser directives dropped. */
export function parseDockerfile(text) {
  const instructions = [];
  let pending = '';
  let startLine = 0;
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.replace(/\s+$/, '');
    if (pending === '' && /^\s*#/.test(line)) continue;
    if (pending !== '' && /^\s*#/.test(line)) continue; // comments inside a continued instruction
    if (pending === '') startLine = i + 1;
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (full === '') continue;
    const match = /^(\S+)\s*(.*)$/s.exec(full);
    instructions.push({ line: startLine, keyword: match[1].toUpperCase(), args: match[2].trim() });
  }
  return instructions;
}

/** Splits `--flag=value ... src... dest` (or the JSON array form) into flags and paths. */
function parseCopy(args) {
  const flags = {};
  let rest = args;
  for (;;) {
    const flag = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest);
    if (!flag) break;
    flags[flag[1]] = flag[2] ?? true;
    rest = rest.slice(flag[0].length);
  }
  let paths;
  if (rest.startsWith('[')) paths = JSON.parse(rest);
  else paths = rest.split(/\s+/).filter(Boolean);
  return { flags, sources: paths.slice(0, -1), dest: paths.at(-1) };
}

function substitute(value, args) {
  return value.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (whole, name) => (name in args ? args[name] : whole));
}

/** Stages with their base image, WORKDIR, COPY instructions, USER, ENTRYPOINT and CMD. */
export function stagesOf(instructions) {
  const globalArgs = {};
  const stages = [];
  let stage = null;
  for (const ins of instructions) {
    if (ins.keyword === 'ARG' && !stage) {
      const [name, value = ''] = ins.args.split('=');
      globalArgs[name.trim()] = value.trim().replace(/^"(.*)"$/, '$1');
      continue;
    }
    if (ins.keyword === 'FROM') {
      const parts = ins.args.split(/\s+/).filter((part) => !part.startsWith('--'));
      stage = { name: parts[2] && parts[1].toUpperCase() === 'AS' ? parts[2] : String(stages.length), image: substitute(parts[0], globalArgs), workdir: '/', copies: [], runs: [], user: null, entrypoint: null, cmd: null, line: ins.line };
      stages.push(stage);
      continue;
    }
    if (!stage) continue;
    if (ins.keyword === 'WORKDIR') stage.workdir = posix.resolve(stage.workdir, ins.args);
    else if (ins.keyword === 'COPY' || ins.keyword === 'ADD') stage.copies.push({ ...parseCopy(ins.args), workdir: stage.workdir, line: ins.line, keyword: ins.keyword });
    else if (ins.keyword === 'RUN') stage.runs.push({ command: ins.args, line: ins.line, copiesBefore: stage.copies.length });
    else if (ins.keyword === 'USER') stage.user = ins.args;
    else if (ins.keyword === 'ENTRYPOINT') stage.entrypoint = { value: ins.args, line: ins.line };
    else if (ins.keyword === 'CMD') stage.cmd = { value: ins.args, line: ins.line };
  }
  return stages;
}

// ---------------------------------------------------------------------------------------------
// .dockerignore, with Docker's rules (moby/patternmatcher): patterns are relative to the context,
// `*` and `?` stop at "/", `**` crosses directories, a leading "!" re-includes, the last pattern
// that matches a path or one of its parent directories decides.

function patternToRegExp(pattern) {
  let out = '';
  for (let i = 0; i < pattern.length; i += 1) {
    const c = pattern[i];
    if (c === '*') {
      if (pattern[i + 1] === '*') {
        i += 1;
        if (pattern[i + 1] === '/') {
          i += 1;
          out += '(?:.*/)?';
        } else out += '.*';
      } else out += '[^/]*';
    } else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i);
      if (end < 0) out += '\\[';
      else {
        out += `[${pattern.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (c === '\\' && i + 1 < pattern.length) {
      i += 1;
      out += pattern[i].replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    } else out += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

export function parseDockerignore(text) {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const exclusion = line.startsWith('!');
      let pattern = exclusion ? line.slice(1).trim() : line;
      pattern = posix.normalize(pattern).replace(/^\/+/, '').replace(/\/+$/, '');
      return { exclusion, pattern, regexp: patternToRegExp(pattern) };
    });
}

/** Whether .dockerignore leaves `path` (relative to the context, "/"-separated) out of the context. */
export function isIgnored(rules, path) {
  const clean = posix.normalize(path).replace(/^\.\//, '').replace(/\/+$/, '');
  if (clean === '' || clean === '.') return false;
  const parts = clean.split('/');
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const rule of rules) {
    if (candidates.some((candidate) => rule.regexp.test(candidate))) ignored = !rule.exclusion;
  }
  return ignored;
}

// ---------------------------------------------------------------------------------------------
// The repository

function expandWorkspaceGlob(root, pattern) {
  if (!pattern.includes('*')) return existsSync(join(root, pattern, 'package.json')) ? [pattern] : [];
  const [base, rest] = pattern.split('/*');
  if (rest) throw new Error(`unsupported workspace pattern ${pattern}`);
  if (!existsSync(join(root, base))) return [];
  return readdirSync(join(root, base))
    .map((name) => `${base}/${name}`)
    .filter((dir) => existsSync(join(root, dir, 'package.json')))
    .sort();
}

/** Workspace directories (relative) with their package.json, from the root package.json's workspaces. */
export function workspaces(root = repoRoot) {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const dirs = (manifest.workspaces ?? []).flatMap((pattern) => expandWorkspaceGlob(root, pattern));
  return dirs.map((dir) => ({ dir, manifest: JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8')) }));
}

/** The @webhooks/* workspaces the services load at run time (their dependencies, transitively). */
export function runtimeWorkspaces(root = repoRoot) {
  const all = workspaces(root);
  const byName = new Map(all.map((ws) => [ws.manifest.name, ws]));
  const needed = new Set();
  const visit = (ws) => {
    if (needed.has(ws.dir)) return;
    needed.add(ws.dir);
    for (const dep of Object.keys(ws.manifest.dependencies ?? {})) if (byName.has(dep)) visit(byName.get(dep));
  };
  for (const service of Object.values(services)) {
    const ws = all.find((candidate) => candidate.dir === service.dir);
    if (!ws) throw new Error(`${service.dir} is not a workspace`);
    visit(ws);
  }
  return [...needed].sort();
}

/** Workspace-level node_modules folders the lock file installs for production (e.g. apps/x/node_modules). */
export function nestedProductionModules(root = repoRoot) {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
  const folders = new Set();
  for (const [path, entry] of Object.entries(lock.packages ?? {})) {
    const match = /^((?:[^/]+\/)*?[^/]+)\/node_modules\//.exec(path);
    if (!match || match[1] === '' || path.startsWith('node_modules/')) continue;
    if (entry.dev || entry.link) continue;
    folders.add(`${match[1]}/node_modules`);
  }
  return [...folders].sort();
}

// ---------------------------------------------------------------------------------------------
// The checks

/** What the repository's build context must hold for `npm ci` and `npm run build` (COPY . .). */
function buildInputs(root) {
  const inputs = ['package.json', 'package-lock.json', 'nx.json', 'tsconfig.base.json', 'buf.yaml', 'buf.gen.yaml', 'proto'];
  for (const { dir, manifest } of workspaces(root)) {
    inputs.push(`${dir}/package.json`);
    if (manifest.scripts?.build) {
      inputs.push(`${dir}/src`);
      for (const name of readdirSync(join(root, dir))) if (/^tsconfig.*\.json$/.test(name)) inputs.push(`${dir}/${name}`);
    }
  }
  return inputs.filter((path) => existsSync(join(root, path)));
}

function execForm(value) {
  if (!value?.value.startsWith('[')) return null;
  try {
    const parsed = JSON.parse(value.value);
    return Array.isArray(parsed) && parsed.every((item) => typeof item === 'string') ? parsed : null;
  } catch {
    return null;
  }
}

/** Whether the final stage's COPY instructions put `imagePath` (absolute) in the image. */
function providedBy(copies, imagePath) {
  return copies.some((copy) => copy.targets.some((target) => imagePath === target || imagePath.startsWith(`${target}/`)));
}

/**
 * Runs every check. Returns { problems: string[], notes: string[], image: { workdir, provides(path) } }.
 */
export function checkImageContext({ root = repoRoot, dockerfile = join(root, 'Dockerfile'), dockerignore = join(root, '.dockerignore') } = {}) {
  const problems = [];
  const notes = [];
  const where = (line) => `${relative(root, dockerfile) || dockerfile}:${line}`;
  if (!existsSync(dockerfile)) return { problems: [`${dockerfile} does not exist`], notes, image: null };
  const rules = existsSync(dockerignore) ? parseDockerignore(readFileSync(dockerignore, 'utf8')) : [];
  if (!existsSync(dockerignore)) problems.push(`${dockerignore} does not exist: node_modules, dist and .git would be sent as build context`);
  const stages = stagesOf(parseDockerfile(readFileSync(dockerfile, 'utf8')));
  if (stages.length === 0) return { problems: ['the Dockerfile has no FROM'], notes, image: null };
  const final = stages.at(-1);
  const build = stages.find((stage) => stage.runs.some((run) => /\bnpm run build\b/.test(run.command)));
  if (!build) problems.push('no stage runs `npm run build`');

  // The base images.
  if (!/^node:24(\.[0-9.]+)?-(bookworm-|trixie-)?slim(@sha256:[0-9a-f]{64})?$/.test(final.image)) problems.push(`${where(final.line)}: the final stage is FROM ${final.image}, not node:24-slim`);

  // COPY from the build context.
  for (const stage of stages) {
    for (const copy of stage.copies) {
      if (copy.flags.from) continue;
      if (copy.keyword === 'ADD') problems.push(`${where(copy.line)}: ADD; use COPY`);
      for (const source of copy.sources) {
        const rel = posix.normalize(source).replace(/^\/+/, '');
        if (/[*?[]/.test(rel)) {
          problems.push(`${where(copy.line)}: ${source}: wildcards are not checked; name the files`);
          continue;
        }
        if (rel === '.' || rel === '') {
          for (const input of buildInputs(root)) {
            if (isIgnored(rules, input)) problems.push(`${where(copy.line)}: COPY ${source}: ${input} is needed by the build but .dockerignore leaves it out`);
          }
          for (const junk of ['node_modules', '.git', 'apps/subscription/dist', 'libs/contracts/src/gen', 'deploy/.tools']) {
            if (existsSync(join(root, junk)) && !isIgnored(rules, junk)) problems.push(`${where(copy.line)}: COPY ${source} would send ${junk} (add it to .dockerignore)`);
          }
          continue;
        }
        if (!existsSync(join(root, rel))) problems.push(`${where(copy.line)}: COPY ${source}: not in the repository`);
        else if (isIgnored(rules, rel)) problems.push(`${where(copy.line)}: COPY ${source}: .dockerignore leaves it out of the build context`);
      }
    }
  }

  // Every workspace manifest before `npm ci` in the build stage.
  const all = workspaces(root);
  if (build) {
    const ci = build.runs.find((run) => /\bnpm ci\b/.test(run.command));
    if (!ci) problems.push(`${where(build.line)}: the build stage never runs npm ci`);
    else {
      const before = build.copies.slice(0, ci.copiesBefore);
      const copiedFromContext = (path) =>
        before.some((copy) => !copy.flags.from && copy.sources.some((source) => {
          const rel = posix.normalize(source).replace(/^\/+/, '');
          return rel === '.' || rel === path || path.startsWith(`${rel}/`);
        }));
      for (const path of ['package.json', 'package-lock.json', ...all.map(({ dir }) => `${dir}/package.json`)]) {
        if (!copiedFromContext(path)) problems.push(`${where(ci.line)}: ${path} is not copied before npm ci`);
      }
    }
  }

  // COPY --from=<stage>: the source exists in the build stage (the repository after a build).
  const stageNames = new Set(stages.map((stage) => stage.name));
  const finalCopies = [];
  for (const copy of final.copies) {
    const targets = [];
    for (const source of copy.sources) {
      let repoPath;
      if (copy.flags.from) {
        if (!stageNames.has(copy.flags.from)) {
          problems.push(`${where(copy.line)}: --from=${copy.flags.from} is no stage of this Dockerfile (an image is not checked)`);
          continue;
        }
        const from = stages.find((stage) => stage.name === copy.flags.from);
        const absolute = posix.resolve(from.workdir, source);
        if (!(absolute === from.workdir || absolute.startsWith(`${from.workdir}/`))) {
          problems.push(`${where(copy.line)}: ${source} is outside the ${from.name} stage's WORKDIR ${from.workdir}`);
          continue;
        }
        repoPath = posix.relative(from.workdir, absolute) || '.';
      } else repoPath = posix.normalize(source).replace(/^\/+/, '');
      if (!existsSync(join(root, repoPath))) problems.push(`${where(copy.line)}: ${source} does not exist after the build (is \`npm run build\` done?)`);
      const dest = posix.resolve(copy.workdir, copy.dest);
      const destIsDir = copy.dest.endsWith('/') || copy.sources.length > 1;
      const isDir = existsSync(join(root, repoPath)) && statSync(join(root, repoPath)).isDirectory();
      targets.push(destIsDir && !isDir ? posix.join(dest, posix.basename(repoPath)) : dest);
    }
    finalCopies.push({ ...copy, targets });
  }
  const workdir = final.workdir;
  const provides = (path) => providedBy(finalCopies, posix.resolve(workdir, path));

  // The final image holds the manifests, the built output the services load, production node_modules.
  for (const path of ['package.json', 'node_modules', ...all.map(({ dir }) => `${dir}/package.json`)]) {
    if (!provides(path)) problems.push(`the final image lacks ${path}`);
  }
  for (const dir of runtimeWorkspaces(root)) {
    if (!provides(`${dir}/dist`)) problems.push(`the final image lacks ${dir}/dist (a service loads it)`);
    else if (!existsSync(join(root, dir, 'dist'))) problems.push(`${dir}/dist does not exist: run \`npm run build\` first`);
  }
  if (!provides('libs/contracts/dist/proto')) problems.push('the final image lacks libs/contracts/dist/proto (gRPC reflection loads it)');
  else if (!existsSync(join(root, 'libs/contracts/dist/proto'))) problems.push('libs/contracts/dist/proto does not exist: run `npm run build` first');
  for (const folder of nestedProductionModules(root)) {
    if (!provides(folder)) problems.push(`the final image lacks ${folder} (production packages the lock file installs there)`);
  }

  // ENTRYPOINT and CMD.
  const entrypoint = execForm(final.entrypoint);
  const cmd = execForm(final.cmd);
  if (!final.entrypoint) problems.push('the final stage has no ENTRYPOINT');
  else if (!entrypoint) problems.push(`${where(final.entrypoint.line)}: ENTRYPOINT is in shell form: /bin/sh would be PID 1 and keep SIGTERM from node`);
  if (final.cmd && !cmd) problems.push(`${where(final.cmd.line)}: CMD is in shell form`);
  const command = [...(entrypoint ?? []), ...(cmd ?? [])];
  if (entrypoint && !/(^|\/)tini$/.test(entrypoint[0]) && !/(^|\/)node$/.test(entrypoint[0])) problems.push(`${where(final.entrypoint.line)}: ENTRYPOINT starts ${entrypoint[0]}, neither tini nor node`);
  if (entrypoint && /(^|\/)tini$/.test(entrypoint[0]) && !final.runs.some((run) => /\btini\b/.test(run.command))) problems.push(`${where(final.entrypoint.line)}: ENTRYPOINT runs tini but the final stage never installs it`);
  const script = command.find((arg) => /\.m?js$/.test(arg));
  if (!script) problems.push('ENTRYPOINT/CMD name no JavaScript entry point');
  else {
    if (!existsSync(join(root, script))) problems.push(`the entry point ${script} does not exist: run \`npm run build\` first`);
    if (!provides(script)) problems.push(`the entry point ${script} is not copied into the final image`);
    notes.push(`default command: ${command.join(' ')}`);
  }
  for (const service of Object.values(services)) {
    for (const entry of service.entryPoints) {
      if (!existsSync(join(root, entry))) problems.push(`${entry} does not exist: run \`npm run build\` first`);
      else if (!provides(entry)) problems.push(`${entry} is not copied into the final image`);
    }
  }

  // The user.
  const user = final.user?.split(':')[0];
  if (!user) problems.push('the final stage runs as root (no USER)');
  else if (!/^\d+$/.test(user)) problems.push(`USER ${final.user}: use a numeric UID so that Kubernetes can verify runAsNonRoot`);
  else if (user === '0') problems.push('USER 0 is root');

  return { problems, notes, image: { workdir, provides } };
}

function main(argv) {
  const options = {};
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === '--dockerfile') options.dockerfile = resolve(value);
    else if (flag === '--dockerignore') options.dockerignore = resolve(value);
    else if (flag === '--root') options.root = resolve(value);
    else {
      console.error('usage: check-image-context.mjs [--dockerfile PATH] [--dockerignore PATH] [--root DIR]');
      return 2;
    }
  }
  const { problems, notes } = checkImageContext(options);
  for (const note of notes) console.log(note);
  for (const problem of problems) console.log(`FAIL ${problem}`);
  console.log(problems.length === 0 ? 'image context: ok' : `image context: ${problems.length} problem(s)`);
  return problems.length === 0 ? 0 : 1;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exit(main(process.argv.slice(2)));
