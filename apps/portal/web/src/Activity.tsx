// The history of the workspace's webhooks, newest first: who created, changed, turned off or on,
// recovered or deleted each one, and why the breaker or a plan change turned one off. Filtered to one
// webhook when opened from its row; refreshed every few seconds while open.
import { useCallback, useEffect, useState } from 'react';
import type { ActivityRecord, Webhook } from './api';
import { useStrings } from './i18n';
import type { Api } from './Webhooks';

const refreshMs = 3_000;

export function Activity({ api, webhookId, onWebhook }: { api: Api; webhookId: string; onWebhook: (id: string) => void }) {
  const { t, locale } = useStrings();
  const [webhooks, setWebhooks] = useState<Webhook[]>([]);
  const [records, setRecords] = useState<ActivityRecord[]>();
  const [older, setOlder] = useState<{ records: ActivityRecord[]; next: string }>({ records: [], next: '' });
  const [nextPage, setNextPage] = useState('');
  const [error, setError] = useState('');

  useEffect(() => {
    api<{ webhooks: Webhook[] }>('GET', '/webhooks').then((r) => setWebhooks(r.webhooks), () => undefined);
  }, [api]);

  const query = useCallback(
    (pageToken = '') => {
      const params = new URLSearchParams();
      if (webhookId) params.set('webhookId', webhookId);
      if (pageToken) params.set('pageToken', pageToken);
      return api<{ activity: ActivityRecord[]; nextPageToken: string }>('GET', `/activity?${params}`);
    },
    [api, webhookId],
  );

  useEffect(() => {
    setOlder({ records: [], next: '' });
    const load = () =>
      query().then(
        (page) => {
          setRecords(page.activity);
          setNextPage(page.nextPageToken);
          setError('');
        },
        (e: Error) => setError(e.message),
      );
    void load();
    const timer = setInterval(() => void load(), refreshMs);
    return () => clearInterval(timer);
  }, [query]);

  const time = (iso?: string) => (iso ? new Date(iso).toLocaleString(locale) : '');
  const rows = [...(records ?? []), ...older.records];
  const who = (r: ActivityRecord) => {
    const a = r.actor;
    if (a.kind === 'portal_session') return t.activity.actors.portalSession;
    if (a.kind === 'operator') return t.activity.actors.operator(a.name);
    if (a.kind === 'system') return a.name === 'breaker' ? t.activity.actors.breaker : t.activity.actors.plan;
    return t.activity.actors.apiToken(a.name);
  };

  return (
    <section>
      <h2>{t.activity.heading}</h2>
      <div className="filters">
        <label>
          {t.log.webhook}
          <select value={webhookId} onChange={(e) => onWebhook(e.target.value)} aria-label={t.log.webhook}>
            <option value="">{t.log.any}</option>
            {webhooks.map((w) => <option key={w.id} value={w.id}>{w.name}</option>)}
          </select>
        </label>
      </div>
      {error && <p role="alert" className="error">{error}</p>}
      {records === undefined ? (
        <p className="muted">{t.loading}</p>
      ) : rows.length === 0 ? (
        <p className="muted">{t.activity.empty}</p>
      ) : (
        <table className="activity">
          <thead><tr><th>{t.log.time}</th><th>{t.log.webhook}</th><th>{t.activity.what}</th><th>{t.activity.who}</th></tr></thead>
          <tbody>
            {rows.map((r) => (
              <tr key={r.cursor} data-testid={`activity-${r.kind}`}>
                <td>{time(r.time)}</td>
                <td>{r.webhookName}</td>
                <td>{t.activity.describe(r)}</td>
                <td>{who(r)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {(older.next || (older.records.length === 0 && nextPage)) && (
        <button onClick={() => query(older.next || nextPage).then((page) => setOlder({ records: [...older.records, ...page.activity], next: page.nextPageToken }), (e: Error) => setError(e.message))}>{t.log.more}</button>
      )}
    </section>
  );
}
