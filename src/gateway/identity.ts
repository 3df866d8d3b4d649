import type { Db } from '../db/database.js';
import type { CertificateRow } from '../db/schema.js';
import type { Clock } from '../clock.js';
import { endSession, loadSession, type SessionPolicy } from '../identity/sessions.js';
import { renewalInfo } from '../renewal/service.js';
import type { RenewalStatus } from '../renewal/policy.js';

/**
 * Who is there, for an application behind Kenshin: the facts of a portal session that was opened
 * with this very certificate, after the steps the manual puts before any work (login, 健診機関選択,
 * and the 証明書更新チェック while 90 days or less are left). The forward-auth endpoint, the
 * assertion and /api/v1/session all come from here, so they cannot disagree.
 */
export interface GatewayDeps {
  db: Db;
  clock: Clock;
  windowDays: number;
  session: SessionPolicy;
}

export interface GatewayIdentity {
  tenant: { code: string; name: string };
  institution: { number: string; name: string };
  user: { loginId: string; role: 'admin' | 'user' };
  certificate: {
    serial: string;
    notAfter: string;
    daysLeft: number;
    /** RFC 8705 x5t#S256: base64url of the SHA-256 of the DER. */
    thumbprint: string;
  };
  renewal: RenewalStatus & { renewed: boolean; deferred: boolean };
}

/**
 * Why a request is not let through. `institution_not_chosen` and `renewal_check_due` send the user
 * back to Kenshin's login, which resumes at the step that is missing; `not_an_application_user`
 * (operators: their tenant has no 健診機関) is a refusal, not a redirect.
 */
export type GatewayRefusal = 'no_session' | 'other_certificate' | 'user_locked' | 'institution_not_chosen' | 'renewal_check_due' | 'not_an_application_user';

export type GatewayOutcome = { ok: true; identity: GatewayIdentity } | { ok: false; reason: GatewayRefusal };

/** Forward auth calls this before every request to the application: see loadSession's touchAfterMs. */
const TOUCH_AFTER_MS = 60_000;

export async function gatewayIdentity(deps: GatewayDeps, cert: CertificateRow, token: string | undefined, opts: { requireRenewalCheck: boolean }): Promise<GatewayOutcome> {
  const session = await loadSession(deps.db, deps.clock, token, deps.session, { touchAfterMs: TOUCH_AFTER_MS });
  if (!session) return { ok: false, reason: 'no_session' };
  if (session.certificate_id !== cert.id) {
    // As on the portal: a cookie presented with another certificate ends the session, so a copied
    // cookie is useless without the certificate's key, and its owner must log in again.
    await endSession(deps.db, session);
    return { ok: false, reason: 'other_certificate' };
  }
  const user = await deps.db
    .selectFrom('users as u')
    .innerJoin('tenants as t', 't.id', 'u.tenant_id')
    .select(['u.login_id', 'u.role', 'u.locked_at', 't.code', 't.name'])
    .where('u.id', '=', session.user_id)
    .executeTakeFirst();
  if (!user || user.locked_at) return { ok: false, reason: 'user_locked' };
  if (user.role !== 'admin' && user.role !== 'user') return { ok: false, reason: 'not_an_application_user' };
  if (session.institution_id === null) return { ok: false, reason: 'institution_not_chosen' };
  // Still one of the user's institutions now (an administrator may have taken it away since).
  const institution = await deps.db
    .selectFrom('user_institutions as ui')
    .innerJoin('institutions as i', 'i.id', 'ui.institution_id')
    .select(['i.number', 'i.name'])
    .where('ui.user_id', '=', session.user_id)
    .where('ui.institution_id', '=', session.institution_id)
    .executeTakeFirst();
  if (!institution) return { ok: false, reason: 'institution_not_chosen' };
  const info = await renewalInfo({ db: deps.db, clock: deps.clock, windowDays: deps.windowDays }, cert);
  const deferred = session.renewal_deferred === 1;
  if (opts.requireRenewalCheck && info.status.eligible && !deferred) return { ok: false, reason: 'renewal_check_due' };
  return {
    ok: true,
    identity: {
      tenant: { code: user.code, name: user.name },
      institution,
      user: { loginId: user.login_id, role: user.role },
      certificate: { serial: cert.serial, notAfter: cert.not_after, daysLeft: info.status.daysLeft, thumbprint: Buffer.from(cert.fingerprint_sha256, 'hex').toString('base64url') },
      renewal: { ...info.status, renewed: info.renewal !== undefined, deferred },
    },
  };
}
