// Publishes to JetStream and waits for the stream's acknowledgement, like JetStreamClient.publish, for
// the hot paths (a task per event and webhook, a record per attempt). The client's publish is a request:
// per message it makes a request object, a timer, and on success still builds a "cancelled" error with a
// stack trace. Here one subscription per connection receives every acknowledgement, matched by the last
// token of the reply subject, and one timer expires what went unanswered.
import { createInbox, headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';

export interface PubAck {
  readonly stream: string;
  readonly seq: number;
  readonly duplicate: boolean;
}

export interface PublishOptions {
  /** Deduplication id (Nats-Msg-Id): the stream stores a repeated id once, within its window. */
  readonly msgID?: string;
  /** Refused unless the subject belongs to this stream (Nats-Expected-Stream). */
  readonly expectStream?: string;
  /** More headers to send, e.g. trace context. Left as they are: the ids above go on a copy. */
  readonly headers?: MsgHdrs;
}

/** The stream refused the message, or no acknowledgement came. */
export class PublishError extends Error {
  constructor(
    message: string,
    /** JetStream's error code (10071 wrong last sequence, ...), 503 without a stream, 408 on timeout. */
    readonly code: number,
  ) {
    super(message);
    this.name = 'PublishError';
  }
}

interface Pending {
  readonly subject: string;
  readonly expiresAt: number;
  resolve(ack: PubAck): void;
  reject(error: Error): void;
}

interface AckBody {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  error?: { code?: number; err_code?: number; description?: string };
}

const sweepIntervalMs = 100;

export class JetStreamPublisher {
  private readonly inbox = createInbox();
  private readonly pending = new Map<string, Pending>();
  private readonly subscription: Subscription;
  private readonly sweeper: NodeJS.Timeout;
  private nextId = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly timeoutMs = 5_000,
  ) {
    this.subscription = nc.subscribe(`${this.inbox}.*`, { callback: (_error, msg) => this.settle(msg) });
    this.sweeper = setInterval(() => this.expire(Date.now()), sweepIntervalMs);
    this.sweeper.unref();
    void nc.closed().then(() => this.close());
  }

  /** Resolves once the stream has stored the message (or recognised it as a duplicate). */
  publish(subject: string, data: Uint8Array, options: PublishOptions = {}): Promise<PubAck> {
    let h = options.headers;
    if (options.msgID !== undefined || options.expectStream !== undefined) {
      // One event's tasks share one trace-headers object; each task gets its own id on its own copy.
      h = natsHeaders();
      for (const [key, values] of options.headers ?? []) for (const value of values) h.append(key, value);
      if (options.msgID !== undefined) h.set('Nats-Msg-Id', options.msgID);
      if (options.expectStream !== undefined) h.set('Nats-Expected-Stream', options.expectStream);
    }
    const id = (this.nextId++).toString(36);
    return new Promise<PubAck>((resolve, reject) => {
      if (this.nc.isClosed()) return reject(new PublishError('the NATS connection is closed', 503));
      this.pending.set(id, { subject, expiresAt: Date.now() + this.timeoutMs, resolve, reject });
      try {
        this.nc.publish(subject, data, { reply: `${this.inbox}.${id}`, ...(h ? { headers: h } : {}) });
      } catch (error) {
        this.pending.delete(id);
        reject(error as Error);
      }
    });
  }

  /** Messages still waiting for their acknowledgement. */
  get inFlight(): number {
    return this.pending.size;
  }

  /** Stops listening; whatever still waits is rejected. */
  close(): void {
    clearInterval(this.sweeper);
    if (!this.nc.isClosed()) this.subscription.unsubscribe();
    for (const [id, waiting] of this.pending) {
      this.pending.delete(id);
      waiting.reject(new PublishError(`no acknowledgement for ${waiting.subject}: the publisher was closed`, 503));
    }
  }

  private settle(msg: Msg): void {
    const id = msg.subject.slice(this.inbox.length + 1);
    const waiting = this.pending.get(id);
    if (!waiting) return; // answered after it expired
    this.pending.delete(id);
    // The server answers 503 itself when nothing (no stream) listens on the subject.
    if (msg.headers?.code === 503) return waiting.reject(new PublishError(`no stream stores ${waiting.subject}`, 503));
    let body: AckBody;
    try {
      body = msg.json<AckBody>();
    } catch {
      return waiting.reject(new PublishError(`unreadable acknowledgement for ${waiting.subject}`, 500));
    }
    if (body.error) return waiting.reject(new PublishError(`${waiting.subject}: ${body.error.description ?? 'refused'}`, body.error.err_code ?? body.error.code ?? 500));
    if (!body.stream) return waiting.reject(new PublishError(`invalid acknowledgement for ${waiting.subject}`, 500));
    waiting.resolve({ stream: body.stream, seq: body.seq ?? 0, duplicate: body.duplicate === true });
  }

  /** Pending entries are in publishing order, and so in order of expiry. */
  private expire(now: number): void {
    for (const [id, waiting] of this.pending) {
      if (waiting.expiresAt > now) return;
      this.pending.delete(id);
      waiting.reject(new PublishError(`no acknowledgement for ${waiting.subject} within ${this.timeoutMs} ms`, 408));
    }
  }
}
