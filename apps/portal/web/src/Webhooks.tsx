// The webhooks screen: the workspace's breaker, the list with each webhook's status and actions, and the
// panels one action opens (add/edit form, secret shown once, test event, recover, chart).
import { useCallback, useEffect, useState } from 'react';
import { ApiError, minutesOf, type Breaker, type EventType, type Session, type Webhook, type WebhookHealth } from './api';
import { Chart } from './Chart';
import { useStrings } from './i18n';
import { WebhookForm } from './WebhookForm';

export type Api = <T>(method: string, path: string, body?: unknown) => Promise<T>;

/** How often the list and the breaker are read again while the screen is open. */
const refreshMs = 2_000;
/** How often each webhook's health is read again: a query over the workspace's last 48 hours of deliveries. */
const healthRefreshMs = 10_000;
const plansWithWebhooks = ['PLAN_ADVANCED', 'PLAN_ENTERPRISE'];

type Panel =
  | { kind: 'add' }
  | { kind: 'edit'; webhook: Webhook }
  | { kind: 'secret'; secret: string }
  | { kind: 'test'; webhook: Webhook }
  | { kind: 'recover'; webhook: Webhook }
  | { kind: 'chart'; webhook: Webhook }
  | { kind: 'delete'; webhook: Webhook };

const reasonKey = (reason: string) => ({ DISABLED_REASON_MANUAL: 'manual', DISABLED_REASON_PLAN: 'plan', DISABLED_REASON_FAILURE_THRESHOLD: 'automatic' })[reason] ?? 'manual';

export function Webhooks({ api, session, onActivity }: { api: Api; session: Session; onActivity: (webhookId: string) => void }) {
  const { t, locale } = useStrings();
  const [webhooks, setWebhooks] = useState<Webhook[]>();
  const [breaker, setBreaker] = useState<Breaker>();
  const [health, setHealth] = useState<Map<string, WebhookHealth>>(new Map());
  const [eventTypes, setEventTypes] = useState<EventType[]>([]);
  const [panel, setPanel] = useState<Panel>();
  const [error, setError] = useState('');
  const canAdd = plansWithWebhooks.includes(session.workspace.plan);

  const load = useCallback(async () => {
    const [list, state] = await Promise.all([api<{ webhooks: Webhook[] }>('GET', '/webhooks'), api<Breaker>('GET', '/breaker')]);
    setWebhooks(list.webhooks);
    setBreaker(state);
  }, [api]);
  const loadHealth = useCallback(async () => {
    const { webhooks: rows } = await api<{ webhooks: WebhookHealth[] }>('GET', '/health');
    setHealth(new Map(rows.map((row) => [row.webhookId, row])));
  }, [api]);

  useEffect(() => {
    api<{ eventTypes: EventType[] }>('GET', '/event-types').then((r) => setEventTypes(r.eventTypes), () => undefined);
    load().catch((e: Error) => setError(e.message));
    void loadHealth().catch(() => undefined);
    const timer = setInterval(() => void load().catch(() => undefined), refreshMs);
    const healthTimer = setInterval(() => void loadHealth().catch(() => undefined), healthRefreshMs);
    return () => {
      clearInterval(timer);
      clearInterval(healthTimer);
    };
  }, [api, load, loadHealth]);

  const act = (work: () => Promise<unknown>) => {
    setError('');
    work()
      .then(() => Promise.all([load(), loadHealth()]))
      .catch((e: unknown) => setError(e instanceof ApiError ? e.message : String(e)));
  };
  const time = (iso?: string) => (iso ? new Date(iso).toLocaleString(locale) : '');

  return (
    <section>
      {breaker && (
        <p className={`breaker ${breaker.failureCount > 0 ? 'warn' : ''}`} data-testid="breaker" title={t.breakerExplain}>
          {t.breaker(breaker.failureCount, breaker.threshold, minutesOf(breaker.windowSeconds))}
        </p>
      )}
      {!canAdd && <p className="notice" role="note">{t.planTooLow(session.workspace.plan.replace('PLAN_', ''))}</p>}
      {error && <p role="alert" className="error">{error} <button className="link" onClick={() => setError('')}>{t.dismiss}</button></p>}
      <div className="toolbar">
        <button onClick={() => setPanel({ kind: 'add' })} disabled={!canAdd}>{t.list.add}</button>
      </div>
      {webhooks === undefined ? (
        <p className="muted">{t.loading}</p>
      ) : webhooks.length === 0 ? (
        <p className="muted">{t.list.empty}</p>
      ) : (
        <table className="webhooks">
          <thead>
            <tr><th>{t.list.name}</th><th>{t.list.url}</th><th>{t.list.eventTypes}</th><th>{t.list.status}</th><th>{t.list.health}</th><th>{t.list.actions}</th></tr>
          </thead>
          <tbody>
            {webhooks.map((w) => {
              const active = w.status === 'WEBHOOK_STATUS_ACTIVE';
              return (
                <tr key={w.id} data-testid={`webhook-${w.name}`}>
                  <td>{w.name}</td>
                  <td className="url">
                    {w.url}
                    {(w.rateLimit || w.authKind !== 'none') && (
                      <div className="muted" data-testid="endpoint-options">
                        {[w.rateLimit ? t.list.rateLimit(w.rateLimit) : '', w.authKind !== 'none' ? t.list.authKind(t.form.authKinds[w.authKind] ?? w.authKind) : ''].filter(Boolean).join(' · ')}
                      </div>
                    )}
                  </td>
                  <td>{w.eventTypes.join(', ')}</td>
                  <td data-testid="status">
                    <span className={active ? 'ok' : 'bad'}>{active ? t.list.active : t.list.disabled}</span>
                    {w.disabled && <div className="muted">{t.list.reasons[reasonKey(w.disabled.reason)]} {t.list.since(time(w.disabled.disableTime))}{w.disabled.detail ? ` — ${w.disabled.detail}` : ''}</div>}
                  </td>
                  <td data-testid="health"><Health health={health.get(w.id)} lastError={w.disabled?.lastError} time={time} /></td>
                  <td className="actions">
                    {active ? (
                      <button onClick={() => act(() => api('POST', `/webhooks/${w.id}/deactivate`))}>{t.list.deactivate}</button>
                    ) : (
                      <button onClick={() => act(() => api('POST', `/webhooks/${w.id}/activate`))}>{t.list.activate}</button>
                    )}
                    <button onClick={() => setPanel({ kind: 'edit', webhook: w })}>{t.list.edit}</button>
                    <button onClick={() => setPanel({ kind: 'test', webhook: w })}>{t.list.test}</button>
                    <button onClick={() => setPanel({ kind: 'recover', webhook: w })}>{t.list.recover}</button>
                    <button onClick={() => setPanel({ kind: 'chart', webhook: w })}>{t.list.chart}</button>
                    <button onClick={() => onActivity(w.id)}>{t.list.activity}</button>
                    <button onClick={() => act(async () => setPanel({ kind: 'secret', secret: (await api<{ signingSecret: string }>('POST', `/webhooks/${w.id}/rotate-secret`)).signingSecret }))}>{t.list.rotate}</button>
                    <button className="danger" onClick={() => setPanel({ kind: 'delete', webhook: w })}>{t.list.delete}</button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}

      {(panel?.kind === 'add' || panel?.kind === 'edit') && (
        <WebhookForm
          api={api}
          eventTypes={eventTypes}
          webhook={panel.kind === 'edit' ? panel.webhook : undefined}
          onCancel={() => setPanel(undefined)}
          onSaved={(secret) => {
            setPanel(secret ? { kind: 'secret', secret } : undefined);
            void load();
          }}
        />
      )}
      {panel?.kind === 'secret' && <SecretOnce secret={panel.secret} onDone={() => setPanel(undefined)} />}
      {panel?.kind === 'delete' && (
        <div className="card" role="dialog" aria-label={t.list.delete}>
          <p>{t.list.confirmDelete(panel.webhook.name)}</p>
          <button className="danger" onClick={() => act(async () => (await api('DELETE', `/webhooks/${panel.webhook.id}`), setPanel(undefined)))}>{t.list.confirm}</button>
          <button onClick={() => setPanel(undefined)}>{t.list.cancel}</button>
        </div>
      )}
      {panel?.kind === 'test' && <TestEvent api={api} webhook={panel.webhook} eventTypes={eventTypes} onClose={() => setPanel(undefined)} />}
      {panel?.kind === 'recover' && <Recover api={api} webhook={panel.webhook} onClose={() => setPanel(undefined)} />}
      {panel?.kind === 'chart' && <Chart api={api} webhook={panel.webhook} onClose={() => setPanel(undefined)} />}
    </section>
  );
}

function SecretOnce({ secret, onDone }: { secret: string; onDone: () => void }) {
  const { t } = useStrings();
  const [copied, setCopied] = useState(false);
  return (
    <div className="card secret" role="dialog" aria-label={t.secret.heading}>
      <h3>{t.secret.heading}</h3>
      <p>{t.secret.explain}</p>
      <code data-testid="signing-secret">{secret}</code>{' '}
      <button onClick={() => navigator.clipboard?.writeText(secret).then(() => setCopied(true), () => setCopied(false))}>{copied ? t.secret.copied : t.secret.copy}</button>
      <div><button onClick={onDone}>{t.secret.done}</button></div>
    </div>
  );
}

function TestEvent({ api, webhook, eventTypes, onClose }: { api: Api; webhook: Webhook; eventTypes: EventType[]; onClose: () => void }) {
  const { t } = useStrings();
  const [eventType, setEventType] = useState(webhook.eventTypes[0] ?? eventTypes[0]?.name ?? '');
  const [result, setResult] = useState('');
  return (
    <div className="card" role="dialog" aria-label={t.test.heading(webhook.name)}>
      <h3>{t.test.heading(webhook.name)}</h3>
      <label>{t.test.eventType}{' '}
        <select value={eventType} onChange={(e) => setEventType(e.target.value)}>
          {eventTypes.map((type) => <option key={type.name} value={type.name}>{type.name}</option>)}
        </select>
      </label>{' '}
      <button onClick={() => api('POST', `/webhooks/${webhook.id}/test`, { eventType }).then(() => setResult(t.test.sent), (e: Error) => setResult(e.message))}>{t.test.send}</button>{' '}
      <button onClick={onClose}>{t.chart.close}</button>
      {result && <p role="status">{result}</p>}
    </div>
  );
}

/** A datetime-local value (the browser's time zone) for a moment. */
const localInput = (date: Date) => new Date(date.getTime() - date.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);

function Recover({ api, webhook, onClose }: { api: Api; webhook: Webhook; onClose: () => void }) {
  const { t } = useStrings();
  const [since, setSince] = useState(localInput(new Date(Date.now() - 24 * 3_600_000)));
  const [result, setResult] = useState('');
  return (
    <div className="card" role="dialog" aria-label={t.recover.heading(webhook.name)}>
      <h3>{t.recover.heading(webhook.name)}</h3>
      <p>{t.recover.explain}</p>
      <label>{t.recover.since}{' '}<input type="datetime-local" value={since} onChange={(e) => setSince(e.target.value)} /></label>{' '}
      <button onClick={() => api<{ queuedCount: number }>('POST', `/webhooks/${webhook.id}/recover`, { since: new Date(since).toISOString() }).then((r) => setResult(t.recover.queued(r.queuedCount)), (e: Error) => setResult(e.message))}>{t.recover.submit}</button>{' '}
      <button onClick={onClose}>{t.chart.close}</button>
      {result && <p role="status">{result}</p>}
    </div>
  );
}

/** The health column: the last 24 hours' success rate, retries waiting with the next one due, and the last failure. */
function Health({ health, lastError, time }: { health: WebhookHealth | undefined; lastError: string | undefined; time: (iso?: string) => string }) {
  const { t, locale } = useStrings();
  const rate = health && health.attempts24h > 0 ? health.succeeded24h / health.attempts24h : undefined;
  const failure = health?.lastFailure;
  return (
    <>
      <div data-testid="success-rate" className={rate === undefined ? 'muted' : rate >= 0.99 ? 'ok' : rate >= 0.9 ? 'warn' : 'bad'}>
        {rate === undefined ? t.list.noAttempts : t.list.successRate((rate * 100).toLocaleString(locale, { maximumFractionDigits: 1 }), health!.attempts24h.toLocaleString(locale))}
      </div>
      {health && health.retryingCount > 0 && <div data-testid="retrying">{t.list.retrying(health.retryingCount, time(health.nextAttemptTime))}</div>}
      {failure ? (
        <div className="muted" data-testid="last-failure">{t.list.lastFailure(time(failure.startTime), failure.failureReason || `${failure.statusCode}`)}</div>
      ) : (
        lastError && <div className="muted" data-testid="last-failure">{lastError}</div>
      )}
    </>
  );
}
