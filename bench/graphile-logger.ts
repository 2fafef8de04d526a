// The graphile-worker peer's logger, for its worker process and the bench's side alike (graphile-peer.ts).
import { Logger } from 'graphile-worker';

/** Warnings and errors only: graphile-worker logs every completed job at info, which costs as much as a delivery. */
export const quietLogger = new Logger(() => (level, message) => {
  if (level === 'error' || level === 'warning') console.error(`graphile-worker peer: ${message}`);
});
