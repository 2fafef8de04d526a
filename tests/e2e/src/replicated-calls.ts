// Calls to replicated services as a careful caller makes them: each try on the next replica, again after
// a failure, and a repeat whose first try may already have been carried out (its answer lost) settled by
// what the repeat finds. The cluster suite runs its control plane and its load through these.
import { status, type Client, type ServiceError } from '@grpc/grpc-js';
import { CreateWebhookRequest, type CreateWebhookResponse, ListWebhooksRequest, type SubscriptionServiceClient, type Webhook } from '@webhooks/contracts';
import { callUnary, testToken, type UnaryMethod, type WireRequest } from '@webhooks/testing';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface RetryPolicy {
  /** Tries after the first before the last error is thrown. */
  readonly retries: number;
  readonly pauseMs: number;
  readonly deadlineMs: number;
}

/** Round-robin over a service's replicas, trying again on any failure. */
export class ReplicatedCalls<C extends Client> {
  private next = 0;

  constructor(
    private readonly clients: readonly C[],
    private readonly policy: RetryPolicy = { retries: 40, pauseMs: 250, deadlineMs: 5_000 },
  ) {}

  /**
   * One unary call. `settled` turns the error of a repeat into the answer the first try would have given
   * (a create finding ALREADY_EXISTS, a delete finding NOT_FOUND); it is asked only from the second try
   * on, so a first try's own conflict still fails.
   */
  async call<Req, Res>(method: (client: C) => UnaryMethod<Req, Res>, request: WireRequest<Req>, settled?: (error: ServiceError) => Promise<Res> | undefined): Promise<Res> {
    for (let attempt = 0; ; attempt++) {
      const client = this.clients[this.next++ % this.clients.length]!;
      try {
        return await callUnary(client, method(client), request, testToken, this.policy.deadlineMs);
      } catch (error) {
        const answer = attempt > 0 ? settled?.(error as ServiceError) : undefined;
        if (answer) return answer;
        if (attempt >= this.policy.retries) throw error;
        await sleep(this.policy.pauseMs);
      }
    }
  }
}

/**
 * Creates a webhook through replicas; a repeat that finds the name taken (the first try's answer was
 * lost after the create) answers with the webhook of that name. Requests are built with `fromPartial`, so
 * every field the encoder needs has its default.
 */
export async function createWebhookOnce(calls: ReplicatedCalls<SubscriptionServiceClient>, request: Partial<CreateWebhookRequest> & { workspaceId: string; name: string }): Promise<Webhook> {
  const created = await calls.call<CreateWebhookRequest, CreateWebhookResponse>((c) => c.createWebhook, CreateWebhookRequest.fromPartial(request), (error) => {
    if (error.code !== status.ALREADY_EXISTS) return undefined;
    return calls
      .call((c) => c.listWebhooks, ListWebhooksRequest.fromPartial({ workspaceId: request.workspaceId, pageSize: 100 }))
      .then((list) => {
        const webhook = list.webhooks.find((w) => w.name === request.name);
        if (!webhook) throw error;
        return { webhook, signingSecret: '' };
      });
  });
  return created.webhook!;
}
