// Summarises the V8 CPU profiles that `BENCH_PROFILE=<dir> npm run bench` makes every service write:
// per profile, the self time of the busiest functions and of the packages they belong to.
//   node --import tsx bench/profile.ts <dir> [functions per profile, default 25]
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a script comes from: a package under node_modules, node's own code, or the project. */
export function packageOf(url: string): string {
  if (!url) return '(native)';
  if (url.startsWith('node:')) return 'node';
  const modules = url.lastIndexOf('node_modules/');
  if (modules >= 0) {
    const [scope, name] = url.slice(modules + 'node_modules/'.length).split('/');
    return scope!.startsWith('@') ? `${scope}/${name}` : scope!;
  }
  const project = /\/(apps|libs)\/([^/]+)\//.exec(url);
  return project ? `${project[1]}/${project[2]}` : url;
}

/** Self milliseconds by key, from the samples of one profile. */
export function selfTimes(profile: CpuProfile, keyOf: (node: ProfileNode) => string): Map<string, number> {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const totals = new Map<string, number>();
  profile.samples.forEach((id, i) => {
    const key = keyOf(byId.get(id)!);
    totals.set(key, (totals.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
  });
  return totals;
}

function top(totals: Map<string, number>, count: number): { name: string; ms: number; share: string }[] {
  const all = [...totals.values()].reduce((sum, ms) => sum + ms, 0);
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, ms]) => ({ name, ms: Math.round(ms), share: `${((100 * ms) / all).toFixed(1)} %` }));
}

function main(): void {
  const [dir, countArg] = process.argv.slice(2);
  if (!dir) {
    console.error('usage: node --import tsx bench/profile.ts <profile dir> [functions per profile]');
    process.exit(2);
  }
  const count = Number(countArg ?? 25);
  let names: Record<string, string> = {};
  try {
    const pids = JSON.parse(readFileSync(join(dir, 'pids.json'), 'utf8')) as Record<string, number>;
    names = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [String(pid), name]));
  } catch {
    // Without the bench's pids.json the files keep their own names.
  }
  for (const file of readdirSync(dir).filter((name) => name.endsWith('.cpuprofile')).sort()) {
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
    const idle = (node: ProfileNode) => ['(idle)', '(program)', '(garbage collector)'].includes(node.callFrame.functionName);
    // CPU.<date>.<time>.<pid>.<thread>.<sequence>.cpuprofile
    const [, , , pid, thread] = file.split('.');
    console.log(`\n${names[pid!] ?? file}${thread === '0' ? '' : ` (thread ${thread})`}: ${file}`);
    console.table(top(selfTimes(profile, (node) => (idle(node) ? node.callFrame.functionName : packageOf(node.callFrame.url))), 12));
    console.table(
      top(
        selfTimes(profile, (node) => {
          const { functionName, url, lineNumber } = node.callFrame;
          return idle(node) ? functionName : `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber + 1}`;
        }),
        count,
      ),
    );
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main();
