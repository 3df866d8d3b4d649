import type { Db } from '../db/database.js';
import { isUniqueViolation } from '../db/database.js';
import type { Clock } from '../clock.js';
import { DAY_MS } from '../clock.js';
import { daysLeft } from '../certificates/status.js';
import { appendAudit } from '../audit/log.js';
import { escalationMail, reminderMail } from './message.js';

/**
 * Expiry reminders. For each valid certificate without a successor, the smallest threshold its days
 * left have reached is mailed to the tenant's contact once (thresholds already passed are not sent
 * late: one mail, not a burst). After expiry without a successor the operator gets one escalation.
 * The ledger row is claimed before sending and kept only when the SMTP server accepted the mail,
 * so a failed send is retried on the next run and never counted as sent.
 */
export interface Mailer {
  send(mail: { to: string; subject: string; text: string }): Promise<void>;
}

export interface ReminderDeps {
  db: Db;
  clock: Clock;
  mailer: Mailer | undefined;
  thresholds: number[];
  operatorEmail: string | undefined;
  portalUrl: string;
}

export interface ReminderOutcome {
  serial: string;
  tenant: string;
  threshold: number;
  to: string;
  result: 'sent' | 'failed' | 'would_send' | 'no_contact';
  error?: string;
}

/** Escalations are sent for certificates that expired within this many days (not for ancient ones). */
const ESCALATE_WITHIN_DAYS = 30;
/** A claim older than this was left by a crashed instance and may be taken over. */
const STALE_CLAIM_MS = 10 * 60_000;

export async function runReminders(deps: ReminderDeps, opts: { dryRun?: boolean } = {}): Promise<ReminderOutcome[]> {
  const now = deps.clock.now();
  const thresholds = [...deps.thresholds].sort((a, b) => a - b);
  const horizon = new Date(now.getTime() + (thresholds[thresholds.length - 1] ?? 0) * DAY_MS).toISOString();
  const candidates = await deps.db
    .selectFrom('certificates as c')
    .innerJoin('tenants as t', 't.id', 'c.tenant_id')
    .select(['c.id', 'c.serial', 'c.not_after', 'c.tenant_id', 't.code', 't.name', 't.contact_email'])
    .where('c.status', '=', 'active')
    // A successor (self-renewal or an operator's re-issue) ends the reminders for its predecessor.
    .where(({ not, exists, selectFrom }) => not(exists(selectFrom('certificates as s').select('s.id').whereRef('s.predecessor_id', '=', 'c.id'))))
    .where('c.not_after', '<=', horizon)
    .where('c.not_after', '>', new Date(now.getTime() - ESCALATE_WITHIN_DAYS * DAY_MS).toISOString())
    .orderBy('c.not_after')
    .execute();

  const out: ReminderOutcome[] = [];
  for (const c of candidates) {
    const left = daysLeft(c.not_after, now);
    const threshold = left <= 0 ? 0 : thresholds.find((t) => left <= t);
    if (threshold === undefined) continue;
    const to = threshold === 0 ? deps.operatorEmail : (c.contact_email ?? undefined);
    const facts = { tenantName: c.name, tenantCode: c.code, serial: c.serial, notAfter: new Date(c.not_after), daysLeft: Math.max(left, 0), portalUrl: deps.portalUrl };
    const base = { serial: c.serial, tenant: c.code, threshold, to: to ?? '' };
    if (await alreadySent(deps.db, c.id, threshold)) continue;
    if (!to) {
      out.push({ ...base, result: 'no_contact' });
      continue;
    }
    if (opts.dryRun || !deps.mailer) {
      out.push({ ...base, result: 'would_send' });
      continue;
    }
    if (!(await claim(deps.db, c.id, threshold, to, now))) continue; // another instance has it
    const mail = threshold === 0 ? escalationMail({ ...facts, contact: c.contact_email }) : reminderMail(facts);
    try {
      await deps.mailer.send({ to, ...mail });
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      await deps.db.transaction().execute(async (trx) => {
        await trx.deleteFrom('reminders').where('certificate_id', '=', c.id).where('threshold', '=', threshold).where('status', '=', 'sending').execute();
        await appendAudit(trx, deps.clock.now(), { actor: 'system:reminders', action: 'reminder.failed', tenantId: c.tenant_id, target: `certificate:${c.serial}`, details: { threshold, to, error } });
      });
      out.push({ ...base, result: 'failed', error });
      continue;
    }
    await deps.db.transaction().execute(async (trx) => {
      await trx.updateTable('reminders').set({ status: 'sent', sent_at: deps.clock.now().toISOString() }).where('certificate_id', '=', c.id).where('threshold', '=', threshold).execute();
      await appendAudit(trx, deps.clock.now(), { actor: 'system:reminders', action: threshold === 0 ? 'reminder.escalated' : 'reminder.sent', tenantId: c.tenant_id, target: `certificate:${c.serial}`, details: { threshold, to } });
    });
    out.push({ ...base, result: 'sent' });
  }
  return out;
}

async function alreadySent(db: Db, certificateId: number, threshold: number): Promise<boolean> {
  const row = await db.selectFrom('reminders').select('status').where('certificate_id', '=', certificateId).where('threshold', '=', threshold).where('status', '=', 'sent').executeTakeFirst();
  return row !== undefined;
}

/** Takes the (certificate, threshold) row; false when another instance holds a fresh claim or it was sent. */
async function claim(db: Db, certificateId: number, threshold: number, recipient: string, now: Date): Promise<boolean> {
  try {
    await db.insertInto('reminders').values({ certificate_id: certificateId, threshold, status: 'sending', recipient, claimed_at: now.toISOString(), sent_at: null }).execute();
    return true;
  } catch (e) {
    if (!isUniqueViolation(e)) throw e;
    const stale = new Date(now.getTime() - STALE_CLAIM_MS).toISOString();
    const res = await db.updateTable('reminders').set({ claimed_at: now.toISOString() }).where('certificate_id', '=', certificateId).where('threshold', '=', threshold).where('status', '=', 'sending').where('claimed_at', '<', stale).executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }
}
