// Who is calling the portal's API and for which workspace: a session token from CreatePortalSession
// (one workspace, until it expires) or an operator token (any workspace, named in X-Portal-Workspace).
// Tokens travel in the Authorization header, never in a cookie, so another site cannot make a browser
// send them (no CSRF).
import { createHash, timingSafeEqual } from 'node:crypto';
import { checkWorkspaceId, DomainError, verifyPortalSession } from '@webhooks/domain';

export interface PortalScope {
  readonly workspaceId: string;
  readonly operator: boolean;
  /** The operator's name (PORTAL_OPERATOR_TOKENS "NAME:TOKEN"; "operator" for an unnamed token). */
  readonly operatorName?: string;
  /** Absent for operators: their token does not expire. */
  readonly expiresAt?: Date;
}

const digest = (token: string) => createHash('sha256').update(token).digest();

export class PortalAuthenticator {
  private readonly operators: { readonly name: string; readonly digest: Buffer }[];

  /** `operatorTokens`: entries `NAME:TOKEN` (the name is what the webhook activity shows) or `TOKEN`. */
  constructor(
    private readonly sessionKey: Buffer,
    operatorTokens: readonly string[],
  ) {
    this.operators = operatorTokens.map((entry) => {
      const named = /^([A-Za-z0-9_.-]{1,64}):(.+)$/.exec(entry);
      const token = named ? named[2]! : entry;
      if (token.length < 16) throw new Error('every PORTAL_OPERATOR_TOKENS token must be at least 16 characters long');
      return { name: named ? named[1]! : 'operator', digest: digest(token) };
    });
  }

  /** Throws `unauthenticated` (no or bad token, expired session) or `invalid-argument` (operator without workspace). */
  scope(authorization: string | undefined, workspaceHeader: string | undefined, now = new Date()): PortalScope {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (!match) throw new DomainError('unauthenticated', 'sign in: open the portal from a link of your product, or with an operator token');
    const token = match[1]!;
    const given = digest(token);
    const operator = this.operators.find((candidate) => timingSafeEqual(candidate.digest, given));
    if (operator) {
      if (!workspaceHeader) throw new DomainError('invalid-argument', 'workspace: an operator picks a workspace (X-Portal-Workspace)');
      return { workspaceId: checkWorkspaceId(workspaceHeader), operator: true, operatorName: operator.name };
    }
    const session = verifyPortalSession(this.sessionKey, token, now);
    return { workspaceId: session.workspaceId, operator: false, expiresAt: session.expiresAt };
  }
}
