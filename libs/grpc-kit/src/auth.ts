// Bearer-token authentication and workspace scoping for every RPC.
import { createHash } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import { DomainError } from '@webhooks/domain';

/** Who is calling: a service token acts on every workspace, a scoped token on the ones listed. */
export class Caller {
  constructor(
    readonly tokenLabel: string,
    private readonly workspaces: ReadonlySet<string> | 'all',
  ) {}

  /** Throws PERMISSION_DENIED unless this caller may act on the workspace. */
  authorize(workspaceId: string): void {
    if (this.workspaces !== 'all' && !this.workspaces.has(workspaceId)) {
      throw new DomainError('permission-denied', `this token may not act on workspace "${workspaceId}"`);
    }
  }
}

const hash = (token: string) => createHash('sha256').update(token).digest('hex');

/**
 * Tokens from configuration (API_TOKENS): comma-separated entries, each `TOKEN` (a service token for all
 * workspaces) or `TOKEN:WORKSPACE_ID|WORKSPACE_ID` (limited to those workspaces). Tokens are kept only as
 * SHA-256 digests, so lookups do not compare secrets character by character.
 */
export class TokenAuthenticator {
  private readonly callers = new Map<string, Caller>();

  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const separator = entry.indexOf(':');
      const token = separator < 0 ? entry : entry.slice(0, separator);
      if (token.length < 8) throw new Error('every API token must be at least 8 characters long');
      const scope = separator < 0 ? 'all' : new Set(entry.slice(separator + 1).split('|').filter(Boolean));
      this.callers.set(hash(token), new Caller(`${token.slice(0, 4)}…`, scope));
    }
  }

  authenticate(metadata: Metadata): Caller {
    const [value] = metadata.get('authorization');
    if (value === undefined) throw new DomainError('unauthenticated', 'missing "authorization" metadata; send "authorization: Bearer <token>"');
    const match = /^Bearer\s+(\S+)$/i.exec(String(value));
    if (!match) throw new DomainError('unauthenticated', 'the "authorization" metadata must be "Bearer <token>"');
    const caller = this.callers.get(hash(match[1]!));
    if (!caller) throw new DomainError('unauthenticated', 'the bearer token is not valid');
    return caller;
  }
}
