// The disable notice a workspace receives: plain text and HTML with the same content.
import type { BreakerTripped } from '@webhooks/contracts';

export interface Notice {
  readonly subject: string;
  readonly text: string;
  readonly html: string;
  readonly messageId: string;
}

const entities: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escape = (value: string) => value.replace(/[&<>"']/g, (c) => entities[c]!);

function duration(seconds: number): string {
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  return seconds % 60 === 0 ? plural(seconds / 60, 'minute') : plural(seconds, 'second');
}

export function composeNotice(trip: BreakerTripped, workspaceName: string): Notice {
  const window = duration(trip.windowSeconds);
  const count = trip.webhooks.length;
  const subject = `${count === 1 ? 'A webhook was' : `${count} webhooks were`} disabled in ${workspaceName}: ${trip.failureCount} failed attempts in ${window}`;
  const intro = `Webhook deliveries in workspace "${workspaceName}" (${trip.workspaceId}) failed ${trip.failureCount} times within ${window}, more than the ${trip.threshold} allowed. To protect your endpoints and the system, the webhooks below were disabled at ${trip.tripTime?.toISOString() ?? 'the time of this notice'} and receive no events until they are activated again.`;
  const howTo = 'To turn a webhook back on once its endpoint answers with 2xx within 5 seconds: open Settings > Integrations > Webhooks, find the webhook and click Activate in the Actions column, or call ActivateWebhook with the workspace and webhook id.';

  const text = [
    intro,
    '',
    ...trip.webhooks.flatMap((w) => [
      `- ${w.name || w.webhookId} (${w.webhookId})`,
      `  URL: ${w.url}`,
      `  failed attempts in the window: ${w.failureCount}`,
      '  last errors:',
      ...w.lastErrors.map((e) => `    ${e.time?.toISOString() ?? ''}  ${e.reason}`),
      '',
    ]),
    howTo,
    '',
    `Reference: trip ${trip.tripId}`,
  ].join('\n');

  const html = `<!doctype html><html><body style="font-family: sans-serif">
<p>${escape(intro)}</p>
${trip.webhooks
  .map(
    (w) => `<h3>${escape(w.name || w.webhookId)} <small>(${escape(w.webhookId)})</small></h3>
<p>URL: <code>${escape(w.url)}</code><br>Failed attempts in the window: ${w.failureCount}</p>
<table border="1" cellpadding="4" cellspacing="0"><tr><th>time</th><th>error</th></tr>
${w.lastErrors.map((e) => `<tr><td>${escape(e.time?.toISOString() ?? '')}</td><td>${escape(e.reason)}</td></tr>`).join('\n')}
</table>`,
  )
  .join('\n')}
<p>${escape(howTo)}</p>
<p style="color: #777">Reference: trip ${escape(trip.tripId)}</p>
</body></html>`;

  return { subject, text, html, messageId: `<trip-${trip.tripId}@webhook-platform>` };
}
