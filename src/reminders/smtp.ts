import nodemailer from 'nodemailer';
import type { Mailer } from './service.js';

/** SMTP through nodemailer: smtp:// upgrades with STARTTLS when offered, smtps:// is TLS from the start. */
export function smtpMailer(url: string, from: string): Mailer {
  const transport = nodemailer.createTransport(url);
  return {
    async send(mail) {
      await transport.sendMail({ from, to: mail.to, subject: mail.subject, text: mail.text });
    },
  };
}
