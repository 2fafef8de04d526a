// What the bench reads about processes from /proc (Linux only): resident memory, which nats-server
// listens on a port, the children the bench started, and which client ports a process holds open.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** Resident memory (VmRSS) in MB, NaN once the process is gone. */
export function rssMb(pid: number | undefined): number {
  try {
    return Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024);
  } catch {
    return NaN;
  }
}

function commandLine(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

function numericEntries(dir: string): number[] {
  try {
    return readdirSync(dir).filter((name) => /^\d+$/.test(name)).map(Number);
  } catch {
    return [];
  }
}

/** The nats-server process started with `port` among its arguments (else the first one found). */
export function natsServerPid(port: string | number): number | undefined {
  const servers = numericEntries('/proc').filter((pid) => commandLine(pid)[0]?.endsWith('nats-server'));
  return servers.find((pid) => commandLine(pid).includes(String(port))) ?? servers[0];
}

/** Children of this process whose command line contains `fragment` (e.g. a service's dist/main.js). */
export function childPids(fragment: string): number[] {
  return numericEntries('/proc').filter((pid) => {
    try {
      const parent = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      return parent === process.pid && commandLine(pid).some((arg) => arg.includes(fragment));
    } catch {
      return false;
    }
  });
}

/**
 * The local ports of the TCP connections `pid` holds to 127.0.0.1:`remotePort` right now: the sockets
 * among its file descriptors, looked up in the IPv4 connection table by inode.
 */
export function clientPortsTo(pid: number, remotePort: number): number[] {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (target.startsWith('socket:[')) inodes.add(target.slice(8, -1));
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    return [];
  }
  const remote = `0100007F:${remotePort.toString(16).toUpperCase().padStart(4, '0')}`;
  const ports: number[] = [];
  // Columns: sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const columns = line.trim().split(/\s+/);
    if (columns[2] === remote && inodes.has(columns[9]!)) ports.push(parseInt(columns[1]!.split(':')[1]!, 16));
  }
  return ports;
}
