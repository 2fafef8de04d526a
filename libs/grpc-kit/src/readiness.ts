// Whether a service can do its work, from the checks it registers (NATS connected, PostgreSQL reachable);
// reflected in the gRPC health service and the operations server's /readyz.
import type { NatsConnection } from '@nats-io/transport-node';
import type { HealthImplementation } from 'grpc-health-check';
import type { Logger } from '@webhooks/telemetry';

export class Readiness {
  private readonly failing = new Map<string, string>();
  private health: HealthImplementation | undefined;

  constructor(private readonly logger: Logger) {}

  /** The gRPC health service to keep in step (SERVING only while every check passes). */
  attach(health: HealthImplementation): void {
    this.health = health;
    this.publish();
  }

  set(check: string, ok: boolean, reason = `${check} is unavailable`): void {
    const was = this.failing.has(check);
    if (ok) this.failing.delete(check);
    else this.failing.set(check, reason);
    if (was !== !ok) this.logger[ok ? 'info' : 'warn']({ check, ready: ok }, ok ? `${check} is back` : reason);
    this.publish();
  }

  ready(): boolean {
    return this.failing.size === 0;
  }

  reason(): string {
    return [...this.failing.values()].join('; ');
  }

  /** Marks NATS unready while the connection is lost, ready again when it reconnects. */
  watchNats(nc: NatsConnection): void {
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') this.set('nats', false, 'NATS connection lost');
        else if (status.type === 'reconnect') this.set('nats', true);
      }
    })();
  }

  private publish(): void {
    this.health?.setStatus('', this.ready() ? 'SERVING' : 'NOT_SERVING');
  }
}
