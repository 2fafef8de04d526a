// Waiting in tests for something another process or loop does: polled, with a deadline that names what
// was awaited.

/** Resolves once `condition` holds; rejects after `timeoutMs` saying what it waited for. */
export async function waitUntil(condition: () => boolean, timeoutMs: number, what: string | (() => string)): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
