// Requests that do not build a thrown-away error each. The client ends every request, one that was
// answered included, with cancel(), which rejects the request's promise with a new
// RequestError("cancelled"): an Error, with its stack captured, that nobody sees (the promise is settled
// already). Ingest makes two KV requests per accepted event, and in `BENCH_PROFILE` those errors took
// about a tenth of its CPU under load. The hook rejects with one shared error instead; a request cancelled
// while still pending (the connection closed) still fails, with that error. It replaces one internal
// method, checks the shape it relies on, and leaves the client alone when an upgrade changed it.
import { RequestOne, RequestError } from '@nats-io/nats-core/internal';

interface RequestInternals {
  timer?: { cancel(): void };
  mux: { cancel(request: unknown): void };
  deferred: { reject(error: unknown): void };
}

let installed = false;

/** Installs the hook once per process; false if the client's internals did not match. */
export function cheapRequestCancel(): boolean {
  if (installed) return true;
  const prototype = (RequestOne as unknown as { prototype?: { cancel?: unknown } }).prototype;
  if (typeof prototype?.cancel !== 'function' || prototype.cancel.length !== 1) return false;
  const cancelled = new RequestError('cancelled');
  prototype.cancel = function cancel(this: RequestInternals, error?: Error): void {
    this.timer?.cancel();
    this.mux.cancel(this);
    this.deferred.reject(error ?? cancelled);
  };
  installed = true;
  return true;
}
