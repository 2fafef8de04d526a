// Sends notices over SMTP, or, without an SMTP server configured (the local profile), writes each one as
// an .eml file so the system runs with nothing else installed.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nodemailer, { type Transporter } from 'nodemailer';
import type { Logger } from '@webhooks/telemetry';
import type { Notice } from './notice.js';

export interface Mailer {
  send(to: readonly string[], notice: Notice): Promise<void>;
  close(): void;
}

export interface MailerSettings {
  readonly smtpUrl: string;
  readonly requireTls: boolean;
  readonly from: string;
  readonly outboxDir: string;
  /** SMTP_CONNECTION_TIMEOUT, SMTP_GREETING_TIMEOUT, SMTP_SOCKET_TIMEOUT: checked together by sendBudget. */
  readonly timeouts?: { readonly connectionMs: number; readonly greetingMs: number; readonly socketMs: number };
}

/** What the configuration defaults to; nodemailer's own (2 min, 30 s, 10 min) would let one send hang for 12 minutes. */
export const defaultSmtpTimeouts = { connectionMs: 10_000, greetingMs: 10_000, socketMs: 30_000 };

export function createMailer(settings: MailerSettings, logger: Logger): Mailer {
  if (settings.smtpUrl === '') {
    const transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
    return {
      async send(to, notice) {
        const info = await transport.sendMail({ from: settings.from, to: [...to], subject: notice.subject, text: notice.text, html: notice.html, messageId: notice.messageId });
        await mkdir(settings.outboxDir, { recursive: true });
        const file = join(settings.outboxDir, `${notice.messageId.replace(/[<>@]/g, '_')}.eml`);
        await writeFile(file, info.message as Buffer);
        logger.info({ file, to }, 'no SMTP server configured: notice written to the outbox');
      },
      close: () => transport.close(),
    };
  }
  const url = new URL(settings.smtpUrl);
  const secure = url.protocol === 'smtps:';
  const transport: Transporter = nodemailer.createTransport({
    host: url.hostname,
    port: Number(url.port) || (secure ? 465 : 587),
    secure,
    requireTLS: settings.requireTls,
    auth: url.username ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } : undefined,
    connectionTimeout: (settings.timeouts ?? defaultSmtpTimeouts).connectionMs,
    greetingTimeout: (settings.timeouts ?? defaultSmtpTimeouts).greetingMs,
    socketTimeout: (settings.timeouts ?? defaultSmtpTimeouts).socketMs,
  });
  return {
    async send(to, notice) {
      // Resolves only once the SMTP server accepted the message.
      await transport.sendMail({ from: settings.from, to: [...to], subject: notice.subject, text: notice.text, html: notice.html, messageId: notice.messageId });
    },
    close: () => transport.close(),
  };
}
