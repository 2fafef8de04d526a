// Adding or editing a webhook. A refusal of the service is shown next to the field it names (the URL
// policy's message by the URL); event types come from the catalog with descriptions and examples. The
// endpoint authentication is write-only: the form shows which kind is set, never its credentials.
import { useState } from 'react';
import { ApiError, redactedHeaderValue as redactedValue, type AuthKind, type EventType, type Webhook } from './api';
import { useStrings } from './i18n';
import type { Api } from './Webhooks';

interface Props {
  readonly api: Api;
  readonly eventTypes: readonly EventType[];
  readonly webhook?: Webhook;
  readonly onCancel: () => void;
  /** With the signing secret when a webhook was created. */
  readonly onSaved: (secret?: string) => void;
}

type Field = 'name' | 'url' | 'eventTypes' | 'headers' | 'rateLimit' | 'auth';

/** Which form field a service message is about: "url: must use https" → url, "auth.password: ..." → auth. */
function fieldOf(message: string): Field | undefined {
  const field = /^(?:webhook\.)?(\w+)/.exec(message)?.[1];
  const byName: Record<string, Field> = { url: 'url', name: 'name', headers: 'headers', event_types: 'eventTypes', rate_limit: 'rateLimit', auth: 'auth' };
  return field === undefined ? undefined : byName[field];
}

/** The credential inputs of each kind of endpoint authentication (the portal API's field names). */
const credentialFields: Record<Exclude<AuthKind, 'none'>, readonly { name: string; multiline?: boolean; secret?: boolean }[]> = {
  basic: [{ name: 'username' }, { name: 'password', secret: true }],
  oauth: [{ name: 'tokenUrl' }, { name: 'clientId' }, { name: 'clientSecret', secret: true }, { name: 'scope' }, { name: 'audience' }],
  mtls: [{ name: 'certificatePem', multiline: true }, { name: 'keyPem', multiline: true, secret: true }, { name: 'caPem', multiline: true }],
};

/**
 * What to send for the authentication: nothing when it stays as it is (the same kind with no credential
 * typed, since the stored ones are never shown), kind "none" to remove it, otherwise the new credentials.
 */
function authToSend(current: AuthKind, kind: AuthKind, credentials: Record<string, string>): Record<string, string> | undefined {
  if (kind === 'none') return current === 'none' ? undefined : { kind: 'none' };
  const typed = credentialFields[kind].some(({ name }) => (credentials[name] ?? '').trim() !== '');
  if (kind === current && !typed) return undefined;
  return { kind, ...Object.fromEntries(credentialFields[kind].map(({ name }) => [name, credentials[name] ?? ''])) };
}

export function WebhookForm({ api, eventTypes, webhook, onCancel, onSaved }: Props) {
  const { t } = useStrings();
  const [name, setName] = useState(webhook?.name ?? '');
  const [url, setUrl] = useState(webhook?.url ?? '');
  const [types, setTypes] = useState<string[]>(webhook?.eventTypes ?? []);
  const [headers, setHeaders] = useState<[string, string][]>(Object.entries(webhook?.headers ?? {}));
  const [rateLimit, setRateLimit] = useState(webhook?.rateLimit ? String(webhook.rateLimit) : '');
  const currentAuth: AuthKind = webhook?.authKind ?? 'none';
  const [authKind, setAuthKind] = useState<AuthKind>(currentAuth);
  const [credentials, setCredentials] = useState<Record<string, string>>({});
  const [errors, setErrors] = useState<Partial<Record<Field | 'form', string>>>({});
  const [example, setExample] = useState<string>();
  const [saving, setSaving] = useState(false);

  async function submit() {
    if (types.length === 0) return setErrors({ eventTypes: t.form.chooseEventType });
    setSaving(true);
    setErrors({});
    const body = {
      name, url, eventTypes: types, headers: Object.fromEntries(headers.filter(([key]) => key.trim() !== '')),
      // Empty: no limit (on an edit this removes one that was set).
      rateLimit: rateLimit.trim() === '' ? null : Number(rateLimit),
      auth: authToSend(currentAuth, authKind, credentials),
    };
    try {
      if (webhook) {
        await api('PATCH', `/webhooks/${webhook.id}`, { ...body, expectedVersion: webhook.version });
        onSaved();
      } else {
        onSaved((await api<{ signingSecret: string }>('POST', '/webhooks', body)).signingSecret);
      }
    } catch (error) {
      const message = error instanceof ApiError ? error.message : String(error);
      setErrors({ [fieldOf(message) ?? 'form']: message });
    } finally {
      setSaving(false);
    }
  }

  const fieldError = (field: keyof typeof errors) => errors[field] && <span className="field-error" role="alert" data-testid={`error-${field}`}>{errors[field]}</span>;

  return (
    <form className="card webhook-form" onSubmit={(e) => (e.preventDefault(), void submit())} aria-label={webhook ? t.form.editHeading(webhook.name) : t.form.addHeading}>
      <h3>{webhook ? t.form.editHeading(webhook.name) : t.form.addHeading}</h3>
      {fieldError('form')}
      <label>{t.form.name}<input value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} /></label>
      {fieldError('name')}
      <label>{t.form.url}<input value={url} onChange={(e) => setUrl(e.target.value)} required placeholder="https://" aria-invalid={Boolean(errors.url)} /></label>
      {fieldError('url')}
      <fieldset>
        <legend>{t.form.eventTypes}</legend>
        {eventTypes.map((type) => (
          <div key={type.name} className="event-type">
            <label>
              <input type="checkbox" checked={types.includes(type.name)} onChange={(e) => setTypes(e.target.checked ? [...types, type.name] : types.filter((x) => x !== type.name))} />
              <strong>{type.name}</strong> <span className="muted">{type.description}</span>
            </label>{' '}
            <button type="button" className="link" onClick={() => setExample(example === type.name ? undefined : type.name)}>{t.form.example}</button>
            {example === type.name && <pre className="example">{JSON.stringify(JSON.parse(type.exampleBodyJson), null, 2)}</pre>}
          </div>
        ))}
        {fieldError('eventTypes')}
      </fieldset>
      <fieldset>
        <legend>{t.form.headers}</legend>
        {headers.some(([, value]) => value === redactedValue) && <p className="muted" data-testid="headers-hidden">{t.form.headersHidden(redactedValue)}</p>}
        {headers.map(([key, value], i) => (
          <div key={i} className="header-row">
            <input aria-label={t.form.headerName} value={key} onChange={(e) => setHeaders(headers.map((h, j) => (j === i ? [e.target.value, h[1]] : h)))} />
            <input aria-label={t.form.headerValue} value={value} onChange={(e) => setHeaders(headers.map((h, j) => (j === i ? [h[0], e.target.value] : h)))} />
            <button type="button" onClick={() => setHeaders(headers.filter((_, j) => j !== i))}>{t.form.removeHeader}</button>
          </div>
        ))}
        <button type="button" onClick={() => setHeaders([...headers, ['', '']])}>{t.form.addHeader}</button>
        {fieldError('headers')}
      </fieldset>
      <label>{t.form.rateLimit}<input type="number" name="rateLimit" min={1} max={1000} step={1} value={rateLimit} onChange={(e) => setRateLimit(e.target.value)} /></label>
      {fieldError('rateLimit')}
      <fieldset>
        <legend>{t.form.auth}</legend>
        {currentAuth !== 'none' && <p className="muted" data-testid="auth-set">{t.form.authSet(t.form.authKinds[currentAuth] ?? currentAuth)}</p>}
        <select aria-label={t.form.auth} value={authKind} onChange={(e) => (setAuthKind(e.target.value as AuthKind), setCredentials({}))}>
          {(['none', 'basic', 'oauth', 'mtls'] as const).map((kind) => <option key={kind} value={kind}>{t.form.authKinds[kind]}</option>)}
        </select>
        {authKind !== 'none' && credentialFields[authKind].map(({ name: field, multiline, secret }) => {
          const label = t.form[field as 'username'];
          const props = { name: `auth-${field}`, value: credentials[field] ?? '', autoComplete: 'off', onChange: (e: { target: { value: string } }) => setCredentials({ ...credentials, [field]: e.target.value }) };
          return <label key={field}>{label}{multiline ? <textarea rows={4} spellCheck={false} {...props} /> : <input type={secret ? 'password' : 'text'} {...props} />}</label>;
        })}
        {fieldError('auth')}
      </fieldset>
      <button type="submit" disabled={saving}>{webhook ? t.form.save : t.form.create}</button>{' '}
      <button type="button" onClick={onCancel}>{t.form.cancel}</button>
    </form>
  );
}
