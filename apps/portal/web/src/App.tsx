// The portal page: signs in from the link's token (or an operator token), then shows the workspace's
// webhooks and its delivery log in the chosen language.
import { useCallback, useEffect, useMemo, useState } from 'react';
import { ApiError, call, type Credentials, type Session } from './api';
import { Activity } from './Activity';
import { DeliveryLog } from './DeliveryLog';
import { initialLocale, locales, StringsContext, useStrings, type Locale } from './i18n';
import { Webhooks } from './Webhooks';

const storageKey = 'portal.credentials';

/** The token from the link's fragment (#token=...), kept for this tab only and removed from the address bar. */
function initialCredentials(): Credentials | undefined {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromLink) {
    sessionStorage.setItem(storageKey, JSON.stringify({ token: fromLink }));
    history.replaceState(null, '', location.pathname + location.search);
  }
  const saved = sessionStorage.getItem(storageKey);
  return saved ? (JSON.parse(saved) as Credentials) : undefined;
}

export function App() {
  const [locale, setLocale] = useState<Locale>(initialLocale);
  const [credentials, setCredentials] = useState<Credentials | undefined>(initialCredentials);
  const [session, setSession] = useState<Session>();
  const [signInError, setSignInError] = useState('');
  const [tab, setTab] = useState<'webhooks' | 'log' | 'activity'>('webhooks');
  // The Activity tab's webhook filter: set when opened from a webhook's row.
  const [activityOf, setActivityOf] = useState('');
  const strings = useMemo(() => ({ t: locales[locale], locale }), [locale]);
  const t = strings.t;

  useEffect(() => {
    document.documentElement.lang = locale;
    localStorage.setItem('portal.locale', locale);
  }, [locale]);

  const signOut = useCallback((message: string) => {
    sessionStorage.removeItem(storageKey);
    setCredentials(undefined);
    setSession(undefined);
    setSignInError(message);
  }, []);

  useEffect(() => {
    if (!credentials) return;
    call<Session>(credentials, 'GET', '/session').then(setSession, (error: unknown) => signOut(error instanceof Error ? error.message : String(error)));
  }, [credentials, signOut]);

  /** Every screen's API calls: an expired or refused session ends the sign-in. */
  const api = useCallback(
    async <T,>(method: string, path: string, body?: unknown): Promise<T> => {
      try {
        return await call<T>(credentials!, method, path, body);
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) signOut(t.signIn.expired);
        throw error;
      }
    },
    [credentials, signOut, t],
  );

  const languagePicker = (
    <label className="language">
      {t.language}{' '}
      <select value={locale} onChange={(e) => setLocale(e.target.value as Locale)} aria-label={t.language}>
        <option value="en">English</option>
        <option value="de">Deutsch</option>
      </select>
    </label>
  );

  return (
    <StringsContext.Provider value={strings}>
      <header className="top">
        <h1>{t.title}</h1>
        {session && <span className="workspace">{t.workspace(session.workspace.name, session.workspace.id)}{session.operator ? ` · ${t.operator}` : ''}</span>}
        {session?.expiresAt && <span className="muted">{t.sessionEnds(new Date(session.expiresAt).toLocaleString(locale, { dateStyle: 'medium', timeStyle: 'short' }))}</span>}
        {languagePicker}
      </header>
      {!credentials && <SignIn error={signInError} onSignIn={(c) => (setSignInError(''), sessionStorage.setItem(storageKey, JSON.stringify(c)), setCredentials(c))} />}
      {credentials && !session && <p className="muted">{t.loading}</p>}
      {session && (
        <main>
          <nav className="tabs" role="tablist">
            <button role="tab" aria-selected={tab === 'webhooks'} onClick={() => setTab('webhooks')}>{t.tabs.webhooks}</button>
            <button role="tab" aria-selected={tab === 'log'} onClick={() => setTab('log')}>{t.tabs.log}</button>
            <button role="tab" aria-selected={tab === 'activity'} onClick={() => (setActivityOf(''), setTab('activity'))}>{t.tabs.activity}</button>
          </nav>
          {tab === 'webhooks' ? (
            <Webhooks api={api} session={session} onActivity={(id) => (setActivityOf(id), setTab('activity'))} />
          ) : tab === 'log' ? (
            <DeliveryLog api={api} />
          ) : (
            <Activity api={api} webhookId={activityOf} onWebhook={setActivityOf} />
          )}
        </main>
      )}
    </StringsContext.Provider>
  );
}

function SignIn({ error, onSignIn }: { error: string; onSignIn: (credentials: Credentials) => void }) {
  const { t } = useStrings();
  const [token, setToken] = useState('');
  const [workspaceId, setWorkspaceId] = useState('');
  return (
    <section className="card sign-in">
      <h2>{t.signIn.heading}</h2>
      {error && <p role="alert" className="error">{error}</p>}
      <p>{t.signIn.explain}</p>
      <form onSubmit={(e) => (e.preventDefault(), onSignIn({ token: token.trim(), workspaceId: workspaceId.trim() }))}>
        <label>{t.signIn.token}<input type="password" value={token} onChange={(e) => setToken(e.target.value)} autoComplete="off" required /></label>
        <label>{t.signIn.workspace}<input value={workspaceId} onChange={(e) => setWorkspaceId(e.target.value)} required /></label>
        <button type="submit">{t.signIn.submit}</button>
      </form>
    </section>
  );
}
