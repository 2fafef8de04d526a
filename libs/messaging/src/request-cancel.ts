// Requests that do not build a thrown-away error each. The client ends every request, one that was
// answered included, with cancel(), which rejects the request's promise with a new
// RequestError("cancelled"): an Error, with its stack captured, that nobody sees (the promise is settled
// already). Ingest makes two KV requests per accepted event, and in `BENCH_PROFILE` those errors took
// about a tenth of its CPU under load. The hook rejects with one shared error instead; a request cancelled
// while still pending (the connection closed) still fails, with that error. It replaces one internal
// method of one known client line (3.4), checks the shape it relies on as well, and leaves the client
// alone when an upgrade changed either. The shared error is not frozen: the client writes to the error a
// pending request is rejected with, and with a frozen one that write threw inside the client and the
// request's promise never settled (seen: a KV delete of a lease waited forever).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { RequestOne, RequestError } from '@nats-io/nats-core/internal';

/** The client line whose RequestOne.cancel the hook was written against (the package is pinned to it). */
const knownClientLine = /^3\.4\./;

/** The installed @nats-io/nats-core version, read from its package.json (its exports do not name it). */
export function natsCoreVersion(): string {
  const entry = createRequire(import.meta.url).resolve('@nats-io/nats-core');
  return (JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8')) as { version: string }).version;
}

interface RequestInternals {
  timer?: { cancel(): void };
  mux: { cancel(request: unknown): void };
  deferred: { reject(error: unknown): void };
}

let installed = false;

/** Whether the hook fits this client: the known line, and a cancel(error) method to replace. Pure. */
export function hookFits(version: string, cancel: unknown): cancel is (error?: Error) => void {
  return knownClientLine.test(version) && typeof cancel === 'function' && cancel.length === 1;
}

/** Installs the hook once per process; false if the client's version or internals did not match. */
export function cheapRequestCancel(): boolean {
  if (installed) return true;
  const prototype = (RequestOne as unknown as { prototype?: { cancel?: unknown } }).prototype;
  if (!prototype || !hookFits(natsCoreVersion(), prototype.cancel)) return false;
  const cancelled = new RequestError('cancelled');
  prototype.cancel = function cancel(this: RequestInternals, error?: Error): void {
    this.timer?.cancel();
    this.mux.cancel(this);
    this.deferred.reject(error ?? cancelled);
  };
  installed = true;
  return true;
}
