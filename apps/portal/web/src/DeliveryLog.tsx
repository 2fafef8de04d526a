// The delivery log: newest first, filtered by webhook, event type, status and time, refreshed while it is
// open; a delivery opens to its attempts (headers redacted by the service), response excerpts and body.
import { useCallback, useEffect, useState } from 'react';
import type { Delivery, EventType, Webhook } from './api';
import { useStrings } from './i18n';
import type { Api } from './Webhooks';

/** How often the log is read again while it is open. */
const refreshMs = 2_000;
const statusOf = (status: string) => status.replace('DELIVERY_STATUS_', '').toLowerCase();

export function DeliveryLog({ api }: { api: Api }) {
  const { t, locale } = useStrings();
  const [webhooks, setWebhooks] = useState<Webhook[]>([]);
  const [eventTypes, setEventTypes] = useState<EventType[]>([]);
  const [filter, setFilter] = useState({ webhookId: '', eventType: '', status: '', from: '', to: '' });
  const [deliveries, setDeliveries] = useState<Delivery[]>();
  const [older, setOlder] = useState<{ deliveries: Delivery[]; next: string }>({ deliveries: [], next: '' });
  const [nextPage, setNextPage] = useState('');
  const [open, setOpen] = useState<Delivery>();
  const [error, setError] = useState('');
  const [notice, setNotice] = useState('');

  useEffect(() => {
    api<{ webhooks: Webhook[] }>('GET', '/webhooks').then((r) => setWebhooks(r.webhooks), () => undefined);
    api<{ eventTypes: EventType[] }>('GET', '/event-types').then((r) => setEventTypes(r.eventTypes), () => undefined);
  }, [api]);

  const query = useCallback(
    (pageToken = '') => {
      const params = new URLSearchParams();
      if (filter.webhookId) params.set('webhookId', filter.webhookId);
      if (filter.eventType) params.set('eventType', filter.eventType);
      if (filter.status) params.set('status', filter.status);
      if (filter.from) params.set('from', new Date(filter.from).toISOString());
      if (filter.to) params.set('to', new Date(filter.to).toISOString());
      if (pageToken) params.set('pageToken', pageToken);
      return api<{ deliveries: Delivery[]; nextPageToken: string }>('GET', `/deliveries?${params}`);
    },
    [api, filter],
  );

  useEffect(() => {
    let stopped = false;
    setOlder({ deliveries: [], next: '' });
    const refresh = () =>
      query().then(
        (page) => {
          if (stopped) return;
          setDeliveries(page.deliveries);
          setNextPage(page.nextPageToken);
          setError('');
        },
        (e: Error) => !stopped && setError(e.message),
      );
    void refresh();
    const timer = setInterval(() => void refresh(), refreshMs);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [query]);

  const show = (id: string) => api<{ delivery: Delivery }>('GET', `/deliveries/${id}`).then((r) => setOpen(r.delivery), (e: Error) => setError(e.message));
  const time = (iso?: string) => (iso ? new Date(iso).toLocaleString(locale) : '');
  const hookName = (id: string) => webhooks.find((w) => w.id === id)?.name ?? id;
  const rows = [...(deliveries ?? []), ...older.deliveries];
  const set = (key: keyof typeof filter) => (e: { target: { value: string } }) => setFilter({ ...filter, [key]: e.target.value });

  return (
    <section>
      <h2>{t.log.heading}</h2>
      <p className="muted">{t.log.live}</p>
      <div className="filters">
        <label>{t.log.webhook}<select value={filter.webhookId} onChange={set('webhookId')}><option value="">{t.log.any}</option>{webhooks.map((w) => <option key={w.id} value={w.id}>{w.name}</option>)}</select></label>
        <label>{t.log.eventType}<select value={filter.eventType} onChange={set('eventType')}><option value="">{t.log.any}</option>{eventTypes.map((e) => <option key={e.name} value={e.name}>{e.name}</option>)}</select></label>
        <label>{t.log.status}<select value={filter.status} onChange={set('status')}><option value="">{t.log.any}</option>{Object.entries(t.log.statuses).map(([key, label]) => <option key={key} value={key}>{label}</option>)}</select></label>
        <label>{t.log.from}<input type="datetime-local" value={filter.from} onChange={set('from')} /></label>
        <label>{t.log.to}<input type="datetime-local" value={filter.to} onChange={set('to')} /></label>
      </div>
      {error && <p role="alert" className="error">{error}</p>}
      {notice && <p role="status">{notice}</p>}
      {deliveries === undefined ? (
        <p className="muted">{t.loading}</p>
      ) : rows.length === 0 ? (
        <p className="muted">{t.log.empty}</p>
      ) : (
        <table className="deliveries">
          <thead><tr><th>{t.log.time}</th><th>{t.log.webhook}</th><th>{t.log.eventType}</th><th>{t.log.event}</th><th>{t.log.status}</th><th>{t.log.attempts}</th><th /></tr></thead>
          <tbody>
            {rows.map((d) => (
              <tr key={d.id} data-testid={`delivery-${d.eventId}`} className={open?.id === d.id ? 'selected' : ''}>
                <td>{time(d.createTime)}</td>
                <td>{hookName(d.webhookId)}</td>
                <td>{d.eventType}</td>
                <td className="mono">{d.eventId}</td>
                <td data-testid="delivery-status" className={`status-${statusOf(d.status)}`}>
                  {t.log.statuses[statusOf(d.status)]}{d.dropReason ? ` — ${d.dropReason}` : ''}
                  {d.nextAttemptTime && <div className="muted" data-testid="next-attempt">{t.log.nextAttempt(time(d.nextAttemptTime), time(d.giveUpTime))}</div>}
                </td>
                <td>{d.attemptCount}</td>
                <td>
                  <button onClick={() => void show(d.id)}>{t.log.details}</button>
                  {statusOf(d.status) === 'dropped' && <button onClick={() => api('POST', `/deliveries/${d.id}/retry`).then(() => setNotice(t.log.retried), (e: Error) => setError(e.message))}>{t.log.retry}</button>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {(older.next || (older.deliveries.length === 0 && nextPage)) && (
        <button onClick={() => query(older.next || nextPage).then((page) => setOlder({ deliveries: [...older.deliveries, ...page.deliveries], next: page.nextPageToken }), (e: Error) => setError(e.message))}>{t.log.more}</button>
      )}
      {open && <DeliveryDetails delivery={open} onClose={() => setOpen(undefined)} />}
    </section>
  );
}

function DeliveryDetails({ delivery, onClose }: { delivery: Delivery; onClose: () => void }) {
  const { t, locale } = useStrings();
  let body = delivery.body ?? '';
  try {
    body = JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    // Shown as sent.
  }
  return (
    <div className="card details" role="dialog" aria-label={t.log.details} data-testid="delivery-details">
      <h3>{delivery.eventType} · <span className="mono">{delivery.eventId}</span></h3>
      {delivery.dropReason && <p>{t.log.dropReason}: {delivery.dropReason}</p>}
      {delivery.retryOfDeliveryId && <p>{t.log.retryOf}: <span className="mono">{delivery.retryOfDeliveryId}</span></p>}
      {delivery.nextAttemptTime && <p data-testid="details-next-attempt">{t.log.nextAttempt(new Date(delivery.nextAttemptTime).toLocaleString(locale), delivery.giveUpTime ? new Date(delivery.giveUpTime).toLocaleString(locale) : '')}</p>}
      {delivery.attempts.map((a) => (
        <details key={a.number} open={a.number === delivery.attempts.length}>
          <summary>
            {t.log.attempt(a.number)} · {a.startTime ? new Date(a.startTime).toLocaleString(locale) : ''} · {t.log.duration(a.durationMs)} · {a.failureReason || `${t.log.statusCode} ${a.statusCode}`}
          </summary>
          <h4>{t.log.requestHeaders}</h4>
          <table className="headers"><tbody>{Object.entries(a.requestHeaders).map(([name, value]) => <tr key={name}><td className="mono">{name}</td><td className="mono">{value}</td></tr>)}</tbody></table>
          <h4>{t.log.response}</h4>
          <pre>{a.responseExcerpt}</pre>
        </details>
      ))}
      <h4>{t.log.body}</h4>
      <pre data-testid="delivery-body">{body}</pre>
      <button onClick={onClose}>{t.log.close}</button>
    </div>
  );
}
