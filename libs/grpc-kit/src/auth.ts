// Bearer-token authentication and workspace scoping for every RPC.
import { createHash } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import { DomainError } from '@webhooks/domain';

/** Who is calling: a service token acts on every workspace, a scoped token on the ones listed. */
export class Caller {
  constructor(
    /** The token's name (API_TOKENS "NAME=TOKEN"), or its first characters when it has none. */
    readonly tokenLabel: string,
    private readonly workspaces: ReadonlySet<string> | 'all',
  ) {}

  /** Throws PERMISSION_DENIED unless this caller may act on every workspace. */
  authorizeAll(what: string): void {
    if (this.workspaces !== 'all') throw new DomainError('permission-denied', `this token may act on some workspaces only; ${what} needs a token for every workspace (or name a workspace)`);
  }

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
 * workspaces) or `TOKEN:WORKSPACE_ID|WORKSPACE_ID` (limited to those workspaces), optionally named with
 * `NAME=` in front (`crm-sync=TOKEN:ws_1`): the name says who changed what in the webhook activity, and
 * an unnamed token is shown by its first four characters. Tokens are kept only as SHA-256 digests, so
 * lookups do not compare secrets character by character.
 */
export class TokenAuthenticator {
  private readonly callers = new Map<string, Caller>();

  constructor(entries: readonly string[]) {
    for (const given of entries) {
      const named = /^([A-Za-z0-9_.-]{1,64})=(.*)$/.exec(given);
      const entry = named ? named[2]! : given;
      const separator = entry.indexOf(':');
      const token = separator < 0 ? entry : entry.slice(0, separator);
      if (token.length < 8) throw new Error('every API token must be at least 8 characters long');
      const scope = separator < 0 ? 'all' : new Set(entry.slice(separator + 1).split('|').filter(Boolean));
      this.callers.set(hash(token), new Caller(named ? named[1]! : `${token.slice(0, 4)}…`, scope));
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
