// The client the core product (and the operator CLI) uses: one object for the three services, with the
// bearer token on every call, a deadline per call, and retries only where repeating is harmless:
// PublishEvent(s) (the event id makes them idempotent), reads, and UpsertWorkspace.
import { AsyncLocalStorage } from 'node:async_hooks';
import { credentials, Metadata, status, type ChannelCredentials, type ChannelOptions, type Client, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import {
  DeliveryLogServiceClient,
  IngestServiceClient,
  SubscriptionServiceClient,
  type ActivateWebhookRequest, type ActivateWebhookResponse, type CreateWebhookRequest, type CreateWebhookResponse,
  type DeactivateWebhookRequest, type DeactivateWebhookResponse, type DeleteWebhookRequest, type DeleteWebhookResponse,
  type GetDeliveryRequest, type GetDeliveryResponse, type GetWebhookRequest, type GetWebhookResponse,
  type GetWorkspaceRequest, type GetWorkspaceResponse, type ListDeliveriesRequest, type ListDeliveriesResponse,
  type ListEventTypesRequest, type ListEventTypesResponse, type ListWebhooksRequest, type ListWebhooksResponse,
  type PublishEventRequest, type PublishEventResponse, type PublishEventsRequest, type PublishEventsResponse,
  type RetryDeliveryRequest, type RetryDeliveryResponse, type RotateWebhookSecretRequest, type RotateWebhookSecretResponse,
  type SendTestEventRequest, type SendTestEventResponse, type UpdateWebhookRequest, type UpdateWebhookResponse,
  type UpsertWorkspaceRequest, type UpsertWorkspaceResponse,
  type CreatePortalSessionRequest, type CreatePortalSessionResponse, type GetBreakerStateRequest, type GetBreakerStateResponse,
  type RecoverDeliveriesRequest, type RecoverDeliveriesResponse, type GetWebhookStatsRequest, type GetWebhookStatsResponse, type ListWebhookHealthRequest, type ListWebhookHealthResponse,
  type ListWebhookActivityRequest, type ListWebhookActivityResponse, type WatchActivityRequest, type WatchActivityResponse, type WebhookActivity,
} from '@webhooks/contracts';

export interface WebhooksClientOptions {
  /** host:port of the subscription service (SubscriptionService and DeliveryLogService). */
  readonly subscriptionAddress: string;
  /** host:port of event-ingest. */
  readonly ingestAddress: string;
  readonly token: string;
  /** Per call. Default 10 s. */
  readonly deadlineMs?: number;
  /** Tries of a retriable call in all. Default 5. */
  readonly maxAttempts?: number;
  /** First pause between tries; doubles each time, with jitter. Default 100 ms. */
  readonly retryBaseMs?: number;
  /** TLS to both services (see WebhooksTlsOptions); without it, and without `credentials`, plaintext. */
  readonly tls?: WebhooksTlsOptions;
  /** Channel credentials built by the caller; take precedence over `tls`. */
  readonly credentials?: ChannelCredentials;
}

/** PEM contents (read them from files yourself: a long-lived client keeps what it was given). */
export interface WebhooksTlsOptions {
  /** The CA that signed the services' certificates; omitted: the system's trusted roots. */
  readonly ca?: Buffer | string;
  /** A client certificate and its key, when the services require mutual TLS (GRPC_TLS_CLIENT_CA_FILE). */
  readonly cert?: Buffer | string;
  readonly key?: Buffer | string;
  /** The name to expect in the services' certificates instead of the addresses' host (e.g. when calling by IP). */
  readonly serverName?: string;
}

/** Plaintext, or TLS with the given CA and client certificate; refuses half a client certificate. */
export function channelSecurity(tls: WebhooksTlsOptions | undefined): { credentials: ChannelCredentials; options: ChannelOptions } {
  if (!tls) return { credentials: credentials.createInsecure(), options: {} };
  if (!tls.cert !== !tls.key) throw new Error('TLS: a client certificate needs its key and a key its certificate (give both cert and key, or neither)');
  const pem = (value: Buffer | string | undefined) => (value === undefined ? null : Buffer.from(value));
  return {
    credentials: credentials.createSsl(pem(tls.ca), pem(tls.key), pem(tls.cert)),
    options: tls.serverName ? { 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName } : {},
  };
}

/** Who the calls made inside runOnBehalfOf() act for (the portal: "portal-session" or "operator:<name>"). */
const onBehalfOf = new AsyncLocalStorage<string>();

/** Codes after which a watch is resumed from its last cursor; any other code ends it with that error. */
const resumable = new Set([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.RESOURCE_EXHAUSTED, status.INTERNAL, status.UNKNOWN, status.ABORTED]);

/** Codes after which repeating a harmless call can succeed. */
const retriable = new Set([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.RESOURCE_EXHAUSTED, status.ABORTED]);

type Method<Req, Res> = (request: Req, metadata: Metadata, options: { deadline: Date }, callback: (error: ServiceError | null, response: Res) => void) => unknown;

export class WebhooksClient {
  private readonly subscriptionClient: SubscriptionServiceClient;
  private readonly deliveryLogClient: DeliveryLogServiceClient;
  private readonly ingestClient: IngestServiceClient;

  constructor(private readonly options: WebhooksClientOptions) {
    const security = channelSecurity(options.tls);
    const creds = options.credentials ?? security.credentials;
    this.subscriptionClient = new SubscriptionServiceClient(options.subscriptionAddress, creds, security.options);
    this.deliveryLogClient = new DeliveryLogServiceClient(options.subscriptionAddress, creds, security.options);
    this.ingestClient = new IngestServiceClient(options.ingestAddress, creds, security.options);
  }

  // Ingest: idempotent by event id, so retried.
  publishEvent = (r: PublishEventRequest) => this.call<PublishEventRequest, PublishEventResponse>(this.ingestClient, 'publishEvent', r, true);
  publishEvents = (r: PublishEventsRequest) => this.call<PublishEventsRequest, PublishEventsResponse>(this.ingestClient, 'publishEvents', r, true);

  // Control plane.
  upsertWorkspace = (r: UpsertWorkspaceRequest) => this.call<UpsertWorkspaceRequest, UpsertWorkspaceResponse>(this.subscriptionClient, 'upsertWorkspace', r, true);
  getWorkspace = (r: GetWorkspaceRequest) => this.call<GetWorkspaceRequest, GetWorkspaceResponse>(this.subscriptionClient, 'getWorkspace', r, true);
  // The endpoint options (rate_limit, auth) are optional: callers written before them keep compiling.
  createWebhook = (r: Omit<CreateWebhookRequest, 'auth'> & Partial<Pick<CreateWebhookRequest, 'auth'>>) =>
    this.call<CreateWebhookRequest, CreateWebhookResponse>(this.subscriptionClient, 'createWebhook', { ...r, auth: r.auth }, false);
  getWebhook = (r: GetWebhookRequest) => this.call<GetWebhookRequest, GetWebhookResponse>(this.subscriptionClient, 'getWebhook', r, true);
  listWebhooks = (r: ListWebhooksRequest) => this.call<ListWebhooksRequest, ListWebhooksResponse>(this.subscriptionClient, 'listWebhooks', r, true);
  updateWebhook = (r: UpdateWebhookRequest) => this.call<UpdateWebhookRequest, UpdateWebhookResponse>(this.subscriptionClient, 'updateWebhook', r, false);
  deleteWebhook = (r: DeleteWebhookRequest) => this.call<DeleteWebhookRequest, DeleteWebhookResponse>(this.subscriptionClient, 'deleteWebhook', r, false);
  activateWebhook = (r: ActivateWebhookRequest) => this.call<ActivateWebhookRequest, ActivateWebhookResponse>(this.subscriptionClient, 'activateWebhook', r, false);
  deactivateWebhook = (r: DeactivateWebhookRequest) => this.call<DeactivateWebhookRequest, DeactivateWebhookResponse>(this.subscriptionClient, 'deactivateWebhook', r, false);
  rotateWebhookSecret = (r: RotateWebhookSecretRequest) => this.call<RotateWebhookSecretRequest, RotateWebhookSecretResponse>(this.subscriptionClient, 'rotateWebhookSecret', r, false);
  listEventTypes = (r: ListEventTypesRequest = {}) => this.call<ListEventTypesRequest, ListEventTypesResponse>(this.subscriptionClient, 'listEventTypes', r, true);
  // A new link each call: repeating one is harmless.
  createPortalSession = (r: CreatePortalSessionRequest) => this.call<CreatePortalSessionRequest, CreatePortalSessionResponse>(this.subscriptionClient, 'createPortalSession', r, true);
  getBreakerState = (r: GetBreakerStateRequest) => this.call<GetBreakerStateRequest, GetBreakerStateResponse>(this.subscriptionClient, 'getBreakerState', r, true);

  // Delivery log.
  listDeliveries = (r: ListDeliveriesRequest) => this.call<ListDeliveriesRequest, ListDeliveriesResponse>(this.deliveryLogClient, 'listDeliveries', r, true);
  getDelivery = (r: GetDeliveryRequest) => this.call<GetDeliveryRequest, GetDeliveryResponse>(this.deliveryLogClient, 'getDelivery', r, true);
  retryDelivery = (r: RetryDeliveryRequest) => this.call<RetryDeliveryRequest, RetryDeliveryResponse>(this.deliveryLogClient, 'retryDelivery', r, false);
  sendTestEvent = (r: SendTestEventRequest) => this.call<SendTestEventRequest, SendTestEventResponse>(this.deliveryLogClient, 'sendTestEvent', r, false);
  // Not repeated: a call cut off half-way may have queued some deliveries whose records are not written yet.
  recoverDeliveries = (r: RecoverDeliveriesRequest) => this.call<RecoverDeliveriesRequest, RecoverDeliveriesResponse>(this.deliveryLogClient, 'recoverDeliveries', r, false);
  getWebhookStats = (r: GetWebhookStatsRequest) => this.call<GetWebhookStatsRequest, GetWebhookStatsResponse>(this.deliveryLogClient, 'getWebhookStats', r, true);
  listWebhookHealth = (r: ListWebhookHealthRequest) => this.call<ListWebhookHealthRequest, ListWebhookHealthResponse>(this.deliveryLogClient, 'listWebhookHealth', r, true);
  listWebhookActivity = (r: ListWebhookActivityRequest) => this.call<ListWebhookActivityRequest, ListWebhookActivityResponse>(this.subscriptionClient, 'listWebhookActivity', r, true);

  /**
   * Every activity record after `cursor` (of one workspace, or all for an empty workspaceId), then each
   * new one, for as long as the loop consuming it runs. A broken stream (a replica stopped, the network)
   * is resumed with the last record's cursor after a backoff, so nothing is missed or repeated; an error
   * the call cannot recover from (a refused token, a bad cursor) ends the loop with it. Keep the cursor of
   * the last record handled to continue after a restart of your own.
   */
  async *watchActivity(request: WatchActivityRequest, options: { readonly signal?: AbortSignal; readonly onResume?: (error: ServiceError | undefined, delayMs: number) => void } = {}): AsyncGenerator<WebhookActivity> {
    let cursor = request.cursor;
    let failures = 0;
    const base = this.options.retryBaseMs ?? 100;
    while (!options.signal?.aborted) {
      const metadata = this.metadata();
      const call = (this.subscriptionClient as unknown as { watchActivity(r: WatchActivityRequest, m: Metadata): ClientReadableStream<WatchActivityResponse> }).watchActivity({ workspaceId: request.workspaceId, cursor }, metadata);
      const cancel = () => call.cancel();
      options.signal?.addEventListener('abort', cancel, { once: true });
      let ended: ServiceError | undefined;
      try {
        for await (const message of call as AsyncIterable<WatchActivityResponse>) {
          if (!message.activity) continue;
          failures = 0;
          cursor = message.activity.cursor;
          yield message.activity;
        }
      } catch (error) {
        ended = error as ServiceError;
        if (options.signal?.aborted || ended.code === status.CANCELLED) return;
        if (!resumable.has(ended.code)) throw error;
      } finally {
        options.signal?.removeEventListener('abort', cancel);
        call.cancel();
      }
      failures++;
      const delayMs = Math.min(5_000, base * 2 ** Math.min(failures - 1, 6)) * (0.5 + Math.random());
      options.onResume?.(ended, delayMs);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }

  /**
   * Runs `work` with every call it makes marked as done on behalf of someone ("portal-session", or
   * "operator:<name>"): the webhook activity records them so. For the portal, which holds one token for
   * everyone it serves.
   */
  static runOnBehalfOf<T>(actor: string, work: () => Promise<T>): Promise<T> {
    return onBehalfOf.run(actor, work);
  }

  close(): void {
    this.subscriptionClient.close();
    this.deliveryLogClient.close();
    this.ingestClient.close();
  }

  private async call<Req, Res>(client: Client, name: string, request: Req, retry: boolean): Promise<Res> {
    const maxAttempts = retry ? (this.options.maxAttempts ?? 5) : 1;
    const base = this.options.retryBaseMs ?? 100;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once<Req, Res>(client, name, request);
      } catch (error) {
        const code = (error as ServiceError).code;
        if (attempt >= maxAttempts || !retriable.has(code)) throw error;
        await new Promise((resolve) => setTimeout(resolve, base * 2 ** (attempt - 1) * (0.5 + Math.random())));
      }
    }
  }

  private metadata(): Metadata {
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${this.options.token}`);
    const actor = onBehalfOf.getStore();
    if (actor) metadata.set('x-webhooks-on-behalf-of', actor);
    return metadata;
  }

  private once<Req, Res>(client: Client, name: string, request: Req): Promise<Res> {
    const metadata = this.metadata();
    const method = (client as unknown as Record<string, Method<Req, Res>>)[name]!;
    return new Promise((resolve, reject) =>
      method.call(client, request, metadata, { deadline: new Date(Date.now() + (this.options.deadlineMs ?? 10_000)) }, (error, response) => (error ? reject(error) : resolve(response))),
    );
  }
}

export { status } from '@grpc/grpc-js';
export type { ServiceError } from '@grpc/grpc-js';
