// A webhook's last 24 hours as inline SVG: successful and failed attempts per hour as stacked bars on the
// left axis, latency p50/p95 as lines on the right axis, and each hour's figures on hover. No chart
// library, nothing fetched.
import { useEffect, useState } from 'react';
import type { HourlyAttempts, Webhook } from './api';
import { useStrings } from './i18n';
import type { Api } from './Webhooks';

const width = 720;
const height = 200;
const pad = { left: 48, right: 56, top: 30, bottom: 24 };

/** 0, the middle and the top of an axis, as whole numbers. */
const ticks = (max: number) => [...new Set([0, Math.round(max / 2), max])];

export function Chart({ api, webhook, onClose }: { api: Api; webhook: Webhook; onClose: () => void }) {
  const { t, locale } = useStrings();
  const [hours, setHours] = useState<HourlyAttempts[]>();
  const [error, setError] = useState('');

  useEffect(() => {
    api<{ hours: HourlyAttempts[] }>('GET', `/webhooks/${webhook.id}/stats`).then((r) => setHours(r.hours), (e: Error) => setError(e.message));
  }, [api, webhook.id]);

  if (error) return <p role="alert" className="error">{error}</p>;
  if (!hours) return null;
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const maxCount = Math.max(1, ...hours.map((h) => h.succeeded + h.failed));
  const maxMs = Math.max(1, ...hours.map((h) => h.p95Ms));
  const slot = plotW / hours.length;
  const x = (i: number) => pad.left + i * slot;
  const yCount = (n: number) => pad.top + plotH - (n / maxCount) * plotH;
  const yMs = (ms: number) => pad.top + plotH - (ms / maxMs) * plotH;
  const line = (pick: (h: HourlyAttempts) => number) => hours.map((h, i) => `${i === 0 ? 'M' : 'L'}${(x(i) + slot / 2).toFixed(1)},${yMs(pick(h)).toFixed(1)}`).join(' ');
  const hourLabel = (iso: string) => new Date(iso).toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit' });

  return (
    <div className="card chart" role="dialog" aria-label={t.chart.heading(webhook.name)}>
      <h3>{t.chart.heading(webhook.name)}</h3>
      <svg viewBox={`0 0 ${width} ${height}`} width="100%" role="img" aria-label={t.chart.heading(webhook.name)} data-testid="chart">
        {/* Counts on the left axis, latency on the right one, each with its own ticks. */}
        <line x1={pad.left} y1={pad.top} x2={pad.left} y2={pad.top + plotH} className="axis" data-testid="axis-counts" />
        <line x1={pad.left + plotW} y1={pad.top} x2={pad.left + plotW} y2={pad.top + plotH} className="axis" data-testid="axis-latency" />
        <line x1={pad.left} y1={pad.top + plotH} x2={pad.left + plotW} y2={pad.top + plotH} className="axis" />
        {ticks(maxCount).map((n) => <text key={`c${n}`} x={pad.left - 4} y={yCount(n) + 4} className="tick" textAnchor="end">{n.toLocaleString(locale)}</text>)}
        {ticks(maxMs).map((ms) => <text key={`l${ms}`} x={pad.left + plotW + 4} y={yMs(ms) + 4} className="tick">{ms.toLocaleString(locale)}</text>)}
        <text x={4} y={pad.top - 14} className="tick axis-title">{t.chart.attempts}</text>
        <text x={width - 4} y={pad.top - 14} className="tick axis-title" textAnchor="end">{t.chart.latency}</text>
        {hours.map((h, i) => (
          <g key={h.hourStart} className="hour" data-testid="chart-hour">
            <title>{`${hourLabel(h.hourStart)}: ${t.chart.succeeded} ${h.succeeded}, ${t.chart.failed} ${h.failed}, p50 ${h.p50Ms} ms, p95 ${h.p95Ms} ms`}</title>
            {/* The whole slot answers the hover, not only the bars (an hour without attempts too). */}
            <rect x={x(i)} width={slot} y={pad.top} height={plotH} className="hover-slot" />
            <rect x={x(i) + 2} width={slot - 4} y={yCount(h.succeeded)} height={pad.top + plotH - yCount(h.succeeded)} className="bar-ok" />
            <rect x={x(i) + 2} width={slot - 4} y={yCount(h.succeeded + h.failed)} height={yCount(h.succeeded) - yCount(h.succeeded + h.failed)} className="bar-failed" />
            {i % 4 === 0 && <text x={x(i)} y={height - 6} className="tick">{hourLabel(h.hourStart)}</text>}
          </g>
        ))}
        <path d={line((h) => h.p50Ms)} className="line-p50" fill="none" />
        <path d={line((h) => h.p95Ms)} className="line-p95" fill="none" />
      </svg>
      <p className="legend">
        <span className="key bar-ok" /> {t.chart.succeeded} <span className="key bar-failed" /> {t.chart.failed} <span className="key line-p50" /> {t.chart.p50} <span className="key line-p95" /> {t.chart.p95} <span className="muted">({t.chart.attempts})</span>
      </p>
      <button onClick={onClose}>{t.chart.close}</button>
    </div>
  );
}
