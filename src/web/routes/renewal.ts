import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { pageContext, sendPage, type AppDeps } from '../context.js';
import { requirePortal, type Portal } from './portal.js';
import { tokensMatch } from '../csrf.js';
import { returnPath } from '../views/layout.js';
import { renewalCheckPage, renewalConfirmPage, renewalSavePage } from '../views/portal.js';
import { errorPage } from '../views/refusal.js';
import { openPackage, recordPackageAccess, renewalInfo, renewalPairOf, startRenewal, type OpenedPackage, type RenewalPair } from '../../renewal/service.js';
import { updateSession } from '../../identity/sessions.js';
import { isRefusal } from '../../errors.js';
import { platformOf } from '../platform.js';
import type { Pkcs12Profile } from '../../ca/pkcs12.js';
import { body, LIMIT, query } from '../input.js';

/**
 * The renewal screens of the seed manual: 証明書更新チェック (取得する / あとで) → 証明書更新確認
 * (開始する / キャンセル) → 証明書保存 (こちら / 確認する / コピーする).
 */
export function renewalRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { db } = deps.runtime.database;
  const clock = deps.runtime.clock;
  const ctxOf = (req: FastifyRequest, p: Portal) => pageContext(req, { loginId: p.user.login_id, csrf: p.session.csrf_token, role: p.user.role });
  const csrfOk = (p: Portal, req: FastifyRequest) => tokensMatch(p.session.csrf_token, ((req.body ?? {}) as Record<string, unknown>)._csrf);
  const csrfFailed = (req: FastifyRequest, reply: FastifyReply) => sendPage(reply, 403, errorPage(pageContext(req), req.kenshin.t('error.csrf')));

  app.get('/renewal/check', { schema: { querystring: query({ rd: LIMIT.returnPath }) } }, async (req, reply) => {
    const p = await requirePortal(deps, req, reply, { institution: true });
    if (!p) return reply;
    const info = await renewalInfo(deps.renewal, p.cert);
    return sendPage(reply, 200, renewalCheckPage(ctxOf(req, p), { cert: p.cert, now: clock.now(), status: info.status, csrf: p.session.csrf_token, hasPackage: Boolean(info.renewal?.package_sealed), rd: returnPath((req.query as Record<string, unknown>).rd) }));
  });

  const csrfOnly = { schema: { body: body() } };
  app.post('/renewal/later', { schema: { body: body({ rd: LIMIT.returnPath }) } }, async (req, reply) => {
    const p = await requirePortal(deps, req, reply, { institution: true });
    if (!p) return reply;
    if (!csrfOk(p, req)) return csrfFailed(req, reply);
    // Put off for this session only: the check shows again at the next login. Then on to the
    // application page the user was going to, when they came through the gateway.
    await updateSession(db, p.session, { renewal_deferred: 1 });
    return reply.redirect(returnPath(((req.body ?? {}) as Record<string, unknown>).rd) ?? '/home', 303);
  });

  app.get('/renewal/confirm', async (req, reply) => {
    const p = await requirePortal(deps, req, reply, { institution: true });
    if (!p) return reply;
    const info = await renewalInfo(deps.renewal, p.cert);
    if (!info.status.eligible) return reply.redirect('/renewal/check', 303);
    return sendPage(reply, 200, renewalConfirmPage(ctxOf(req, p), { csrf: p.session.csrf_token }));
  });

  app.post('/renewal', csrfOnly, async (req, reply) => {
    const p = await requirePortal(deps, req, reply, { institution: true });
    if (!p) return reply;
    if (!csrfOk(p, req)) return csrfFailed(req, reply);
    try {
      // Idempotent: a double click or a second tab gets the same successor and package.
      const r = await startRenewal(deps.renewal, p.cert, `user:${p.user.login_id}`);
      req.log.info({ predecessor: p.cert.serial, successor: r.successor.serial, created: r.created }, 'renewal started');
      deps.metrics?.renewals.inc({ result: r.created ? 'created' : 'existing' });
    } catch (e) {
      if (isRefusal(e) && (e.code === 'not_in_window' || e.code === 'package_expired')) return reply.redirect('/renewal/check', 303);
      throw e;
    }
    return reply.redirect('/renewal/package', 303);
  });

  /** The package of the current certificate's renewal, whether it presents the old or the new one. */
  const currentPackage = async (p: Portal): Promise<{ opened: OpenedPackage; pair: RenewalPair } | undefined> => {
    const pair = await renewalPairOf(db, p.cert);
    return pair ? { opened: await openPackage(deps.renewal, { renewalId: pair.renewal.id }, p.cert), pair } : undefined;
  };

  // 証明書保存 is a GET: the password shows when this session asked for it (「確認する」, a POST that
  // records that and redirects here). So Back from the help, a reload or a second tab of the same
  // session show the same screen, never a browser's "resend the form?" or "Document Expired".
  app.get('/renewal/package', async (req, reply) => {
    const p = await requirePortal(deps, req, reply, { institution: true });
    if (!p) return reply;
    const found = await currentPackage(p);
    if (!found) return reply.redirect('/renewal/check', 303);
    const { opened, pair } = found;
    const page = renewalSavePage(ctxOf(req, p), {
      pair,
      now: clock.now(),
      csrf: p.session.csrf_token,
      password: p.session.revealed_renewal_id === opened.renewal.id ? opened.contents.password : undefined,
      expiresAt: opened.renewal.package_expires_at,
      platform: platformOf(req.headers['user-agent']),
    });
    return sendPage(reply, 200, page, { noStore: true });
  });

  app.post('/renewal/package/password', csrfOnly, async (req, reply) => {
    const p = await requirePortal(deps, req, reply, { institution: true });
    if (!p) return reply;
    if (!csrfOk(p, req)) return csrfFailed(req, reply);
    const found = await currentPackage(p);
    if (!found) return reply.redirect('/renewal/check', 303);
    // Audited once per session that reveals it; the session remembers it in the same transaction.
    if (p.session.revealed_renewal_id !== found.opened.renewal.id) {
      await recordPackageAccess(deps.renewal, found.opened, 'package.password_revealed', `user:${p.user.login_id}`, {}, { revealedBySession: p.session.id_hash });
    }
    return reply.redirect('/renewal/package#password', 303);
  });

  app.get('/renewal/package/download', { schema: { querystring: query({ format: LIMIT.word }) } }, async (req, reply) => {
    const p = await requirePortal(deps, req, reply, { institution: true });
    if (!p) return reply;
    const found = await currentPackage(p);
    if (!found) return reply.redirect('/renewal/check', 303);
    const { opened } = found;
    const format: Pkcs12Profile = (req.query as Record<string, string>).format === 'modern' ? 'modern' : 'compatible';
    await recordPackageAccess(deps.renewal, opened, 'package.downloaded', `user:${p.user.login_id}`, { format });
    return sendPkcs12(reply, opened, format);
  });
}

export function sendPkcs12(reply: FastifyReply, opened: OpenedPackage, format: Pkcs12Profile) {
  const file = opened.contents.pkcs12[format];
  if (!file) return reply.code(404).send();
  const name = format === 'modern' ? opened.filename.replace(/\.p12$/, '_aes.p12') : opened.filename;
  return reply
    .header('Content-Type', 'application/x-pkcs12')
    .header('Content-Disposition', `attachment; filename="${name}"`)
    .header('Cache-Control', 'no-store')
    .send(Buffer.from(file));
}
