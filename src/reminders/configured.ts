import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import type { Clock } from '../clock.js';
import type { ReminderDeps } from './service.js';
import { smtpMailer } from './smtp.js';

/** The reminder run as configured: mail goes out only when KENSHIN_SMTP_URL is set. */
export function configuredReminders(db: Db, clock: Clock, config: Config): ReminderDeps {
  return {
    db,
    clock,
    mailer: config.smtpUrl ? smtpMailer(config.smtpUrl, config.mailFrom) : undefined,
    thresholds: config.reminderDays,
    operatorEmail: config.operatorEmail,
    portalUrl: config.publicUrl,
  };
}
