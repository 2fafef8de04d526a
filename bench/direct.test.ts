// The direct step must work at many webhooks on a machine with a modest open-files limit: it used to
// open one socket per webhook at once, which at 10,000 webhooks ended in EMFILE.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

// Runs in a child whose open-files limit is 256 (the receiver it forks inherits it): 1,000 webhooks
// would need 1,000 sockets if each had its own.
const child = `
  const { startReceiver } = await import('./harness.js');
  const { direct } = await import('./direct.js');
  const receiver = await startReceiver();
  try {
    await direct(receiver.url, 1000, 2000, 64);
    console.log(JSON.stringify({ arrived: (await receiver.report()).length }));
  } finally {
    receiver.child.kill();
  }`;

test('the direct step delivers 2,000 requests over 1,000 webhooks with ulimit -n 256', async () => {
  const run = spawn('bash', ['-c', 'ulimit -n 256 && exec "$0" --import tsx --input-type=module -e "$1"', process.execPath, child], { cwd: here });
  let output = '';
  run.stdout.on('data', (chunk: Buffer) => (output += chunk));
  run.stderr.on('data', (chunk: Buffer) => (output += chunk));
  const code = await new Promise<number | null>((resolve) => run.on('exit', resolve));
  assert.equal(code, 0, output);
  assert.deepEqual(JSON.parse(output.trim().split('\n').at(-1)!), { arrived: 2000 });
});
