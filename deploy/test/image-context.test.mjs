// The root Dockerfile against the repository after `npm run build` (no container engine here):
// deploy/scripts/check-image-context.mjs, and proof that it catches what it is meant to catch.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkImageContext, isIgnored, parseDockerignore } from '../scripts/check-image-context.mjs';
import { repoRoot } from './helpers.mjs';

const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
const scratch = mkdtempSync(join(tmpdir(), 'deploy-image-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Checks a variant of the Dockerfile (and optionally of .dockerignore) against the repository. */
function checkVariant(name, text, dockerignoreText) {
  const file = join(scratch, `${name}.Dockerfile`);
  writeFileSync(file, text);
  const options = { dockerfile: file };
  if (dockerignoreText !== undefined) {
    options.dockerignore = join(scratch, `${name}.dockerignore`);
    writeFileSync(options.dockerignore, dockerignoreText);
  }
  return checkImageContext(options).problems;
}

describe('the Dockerfile', () => {
  it('copies only what exists in the build context after npm run build, and runs entry points the image has', () => {
    const { problems, notes } = checkImageContext();
    assert.deepEqual(problems, [], `deploy/scripts/check-image-context.mjs:\n${problems.join('\n')}`);
    assert.ok(notes.includes('default command: /usr/bin/tini -- node apps/subscription/dist/main.js'), notes.join('\n'));
  });

  it('builds on node:24-slim, runs as a numeric non-root user, and installs no devDependencies in the final stage', () => {
    assert.match(dockerfile, /^ARG NODE_IMAGE=node:24-slim$/m);
    assert.match(dockerfile, /^FROM \$\{NODE_IMAGE\} AS runtime$/m);
    assert.match(dockerfile, /^USER 1000:1000$/m);
    assert.match(dockerfile, /npm ci --omit=dev/);
    const runtime = dockerfile.slice(dockerfile.indexOf('AS runtime'));
    assert.doesNotMatch(runtime, /npm (ci|install)/, 'the final stage installs nothing from npm');
  });
});

describe('the image-context check', () => {
  it('fails on a COPY of a file that does not exist', () => {
    const problems = checkVariant('missing', dockerfile.replace('COPY package.json package-lock.json .npmrc ./', 'COPY package.json package-lock.json .npmrc no-such-file.json ./'));
    assert.ok(problems.some((problem) => /COPY no-such-file\.json: not in the repository/.test(problem)), problems.join('\n'));
  });

  it('fails on a COPY of something .dockerignore leaves out', () => {
    const problems = checkVariant('ignored', dockerfile, `${readFileSync(join(repoRoot, '.dockerignore'), 'utf8')}\n.npmrc\nproto\n`);
    assert.ok(problems.some((problem) => /COPY \.npmrc: \.dockerignore leaves it out/.test(problem)), problems.join('\n'));
    assert.ok(problems.some((problem) => /proto is needed by the build but \.dockerignore leaves it out/.test(problem)), problems.join('\n'));
  });

  it('fails when a workspace package.json is not copied before npm ci', () => {
    const problems = checkVariant('workspace', dockerfile.replace('COPY libs/domain/package.json libs/domain/\n', ''));
    assert.ok(problems.some((problem) => /libs\/domain\/package\.json is not copied before npm ci/.test(problem)), problems.join('\n'));
  });

  it('fails when an entry point or a library the services load is not in the final image', () => {
    const problems = checkVariant('entry', dockerfile.replace('CMD ["apps/subscription/dist/main.js"]', 'CMD ["apps/subscription/dist/server.js"]').replace('COPY --from=build /app/libs/messaging/dist libs/messaging/dist\n', '').replace('COPY --from=build /app/apps/dispatcher/node_modules apps/dispatcher/node_modules\n', ''));
    assert.ok(problems.some((problem) => /entry point apps\/subscription\/dist\/server\.js does not exist/.test(problem)), problems.join('\n'));
    assert.ok(problems.some((problem) => /lacks libs\/messaging\/dist/.test(problem)), problems.join('\n'));
    assert.ok(problems.some((problem) => /lacks apps\/dispatcher\/node_modules/.test(problem)), problems.join('\n'));
  });

  it('fails on a shell-form ENTRYPOINT and on running as root', () => {
    const problems = checkVariant('shell', dockerfile.replace('ENTRYPOINT ["/usr/bin/tini", "--", "node"]', 'ENTRYPOINT node').replace('USER 1000:1000\n', ''));
    assert.ok(problems.some((problem) => /ENTRYPOINT is in shell form/.test(problem)), problems.join('\n'));
    assert.ok(problems.some((problem) => /runs as root/.test(problem)), problems.join('\n'));
  });

  it('reads .dockerignore as Docker does', () => {
    const rules = parseDockerignore('**/node_modules\n**/dist\ndeploy\n!deploy/package.json\n.git\n');
    assert.equal(isIgnored(rules, 'node_modules/pg/index.js'), true);
    assert.equal(isIgnored(rules, 'apps/dispatcher/node_modules/undici'), true);
    assert.equal(isIgnored(rules, 'libs/contracts/dist/proto'), true);
    assert.equal(isIgnored(rules, 'deploy/k8s/base/kustomization.yaml'), true);
    assert.equal(isIgnored(rules, 'deploy/package.json'), false);
    assert.equal(isIgnored(rules, '.git/HEAD'), true);
    assert.equal(isIgnored(rules, 'libs/contracts/src/index.ts'), false);
    assert.equal(isIgnored(rules, '.gitignore'), false);
  });
});
