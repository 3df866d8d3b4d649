import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { CertificateRow, Institution, Session, User } from '../../db/schema.js';
import { COOKIE, COOKIE_OPTIONS, pageContext, sendPage, type AppDeps } from '../context.js';
import { loadSession, createSession, endSession, endSessionByToken, updateSession } from '../../identity/sessions.js';
import { login } from '../../identity/login.js';
import { newPreLoginCookie, preLoginToken, tokensMatch } from '../csrf.js';
import { loginPage, institutionsPage, homePage } from '../views/portal.js';
import { refusalPage, errorPage } from '../views/refusal.js';
import { dateTime } from '../views/format.js';
import { returnPath, withReturnPath } from '../views/layout.js';
import { renewalInfo, markTakenUp, renewalPairOf, type RenewalPair } from '../../renewal/service.js';
import { platformOf } from '../platform.js';
import { renewalStatus } from '../../renewal/policy.js';
import { appendAudit } from '../../audit/log.js';
import { body, LIMIT, query } from '../input.js';

/**
 * Login, 健診機関 selection, home and logout. Every decision is made here on the server: which
 * certificate is presented, whether the session belongs to it, which institutions the user may use.
 */

export interface Portal {
  cert: CertificateRow;
  session: Session;
  user: User;
  institutions: Institution[];
}

/** Answers the request itself (refusal page or redirect) and returns undefined when it cannot go on. */
export async function requirePortal(deps: AppDeps, req: FastifyRequest, reply: FastifyReply, opts: { institution: boolean }): Promise<Portal | undefined> {
  const cert = await requireCertificate(deps, req, reply);
  if (!cert) return undefined;
  const { db } = deps.runtime.database;
  const session = await currentSession(deps, req, reply, cert);
  if (!session) {
    const ended = (req as FastifyRequest & { sessionEndedByCertificate?: boolean }).sessionEndedByCertificate;
    reply.redirect(ended ? '/?session=ended' : '/', 303);
    return undefined;
  }
  const user = await db.selectFrom('users').selectAll().where('id', '=', session.user_id).executeTakeFirst();
  if (!user || user.locked_at) {
    await endSession(db, session);
    reply.redirect('/', 303);
    return undefined;
  }
  const institutions = await institutionsOf(deps, user.id);
  if (opts.institution && !institutions.some((i) => i.id === session.institution_id)) {
    reply.redirect('/institutions', 303);
    return undefined;
  }
  return { cert, session, user, institutions };
}

/** The request's certificate if it is ours and valid now; otherwise sends the refusal page. */
export async function requireCertificate(deps: AppDeps, req: FastifyRequest, reply: FastifyReply): Promise<CertificateRow | undefined> {
  const id = req.kenshin.identity;
  if (id.kind !== 'ok') {
    await sendPage(reply, id.kind === 'none' ? 401 : 403, refusalPage(pageContext(req), id, deps.runtime.config.operatorContact));
    return undefined;
  }
  // The first request with a renewed certificate marks the renewal as taken up.
  if (id.cert.issued_via === 'renewal') await markTakenUp(deps.renewal, id.cert, `cert:${id.cert.serial}`);
  return id.cert;
}

/** The session for the cookie, if it was opened with this very certificate; any other ends it. */
async function currentSession(deps: AppDeps, req: FastifyRequest, reply: FastifyReply, cert: CertificateRow): Promise<Session | undefined> {
  const { db } = deps.runtime.database;
  const session = await loadSession(db, deps.runtime.clock, req.cookies[COOKIE.session], sessionPolicy(deps));
  if (!session) return undefined;
  if (session.certificate_id !== cert.id) {
    await endSession(db, session);
    reply.clearCookie(COOKIE.session, COOKIE_OPTIONS);
    (req as FastifyRequest & { sessionEndedByCertificate?: boolean }).sessionEndedByCertificate = true;
    return undefined;
  }
  return session;
}

/**
 * The logged-in user behind this request, if any, for pages anyone may open (help): nothing is
 * answered, redirected or ended here, unlike requirePortal. With their renewal, when they have one.
 */
export async function optionalPortal(deps: AppDeps, req: FastifyRequest): Promise<{ cert: CertificateRow; session: Session; user: User; pair: RenewalPair | undefined } | undefined> {
  const id = req.kenshin.identity;
  if (id.kind !== 'ok') return undefined;
  const { db } = deps.runtime.database;
  const session = await loadSession(db, deps.runtime.clock, req.cookies[COOKIE.session], sessionPolicy(deps));
  if (!session || session.certificate_id !== id.cert.id) return undefined;
  const user = await db.selectFrom('users').selectAll().where('id', '=', session.user_id).executeTakeFirst();
  if (!user || user.locked_at) return undefined;
  return { cert: id.cert, session, user, pair: await renewalPairOf(db, id.cert) };
}

export const sessionPolicy = (deps: AppDeps) => ({ idleMinutes: deps.runtime.config.sessionIdleMinutes, maxHours: deps.runtime.config.sessionMaxHours });

export async function institutionsOf(deps: AppDeps, userId: number): Promise<Institution[]> {
  return deps.runtime.database.db
    .selectFrom('user_institutions as ui')
    .innerJoin('institutions as i', 'i.id', 'ui.institution_id')
    .selectAll('i')
    .where('ui.user_id', '=', userId)
    .orderBy('i.number')
    .execute();
}

/**
 * After login or selection: the renewal check when due (and not put off), else where the user was
 * going (`rd`, an application page behind the gateway), else home. The check comes first, as in
 * the manual; 「あとで」 on it then continues to `rd`.
 */
async function nextStep(deps: AppDeps, cert: CertificateRow, session: Session, rd: string | undefined): Promise<string> {
  const info = await renewalInfo(deps.renewal, cert);
  return info.status.eligible && !session.renewal_deferred ? withReturnPath('/renewal/check', rd) : (rd ?? '/home');
}

function preLoginCsrf(deps: AppDeps, req: FastifyRequest, reply: FastifyReply): string {
  let value = req.cookies[COOKIE.pre];
  if (!value) {
    value = newPreLoginCookie();
    reply.setCookie(COOKIE.pre, value, COOKIE_OPTIONS);
  }
  return preLoginToken(deps.csrfKey, value);
}

export function portalRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { db } = deps.runtime.database;
  const clock = deps.runtime.clock;

  const showLogin = async (req: FastifyRequest, reply: FastifyReply, status = 200, extra: { error?: string; loginId?: string; rd?: string | undefined } = {}) => {
    const cert = await requireCertificate(deps, req, reply);
    if (!cert) return reply;
    const rd = extra.rd ?? returnPath((req.query as Record<string, unknown>).rd);
    const session = await currentSession(deps, req, reply, cert);
    if (session && status === 200 && !extra.error) return reply.redirect(session.institution_id ? await nextStep(deps, cert, session, rd) : withReturnPath('/institutions', rd), 303);
    const ended = (req as FastifyRequest & { sessionEndedByCertificate?: boolean }).sessionEndedByCertificate || (req.query as Record<string, string>).session === 'ended';
    return sendPage(
      reply,
      status,
      loginPage(pageContext(req), { cert, now: clock.now(), csrf: preLoginCsrf(deps, req, reply), loginId: extra.loginId, error: extra.error, info: ended ? req.kenshin.t('refusal.sessionEnded') : undefined, rd }),
    );
  };

  const loginQuery = { schema: { querystring: query({ session: LIMIT.word, rd: LIMIT.returnPath }) } };
  // In front of an application (KENSHIN_UPSTREAM_URL), `/` is the application's; the login stays at /login.
  if (!deps.runtime.config.upstreamUrl) app.get('/', loginQuery, (req, reply) => showLogin(req, reply));
  app.get('/login', loginQuery, (req, reply) => showLogin(req, reply));

  // Bounded here, before login() runs: an oversized login ID is refused without a throttle or audit row.
  app.post('/login', { schema: { body: body({ loginId: LIMIT.loginId, password: LIMIT.password, rd: LIMIT.returnPath }) } }, async (req, reply) => {
    const cert = await requireCertificate(deps, req, reply);
    if (!cert) return reply;
    const body = (req.body ?? {}) as Record<string, unknown>;
    const t = req.kenshin.t;
    const rd = returnPath(body.rd);
    const pre = req.cookies[COOKIE.pre];
    if (!pre || !tokensMatch(preLoginToken(deps.csrfKey, pre), body._csrf)) return showLogin(req, reply, 403, { error: t('error.csrf'), rd });
    const loginId = typeof body.loginId === 'string' ? body.loginId : '';
    const password = typeof body.password === 'string' ? body.password : '';
    if (!loginId.trim() || !password) return showLogin(req, reply, 400, { error: t('login.error.missing'), loginId, rd });
    const result = await login({ db, clock }, { cert, loginId, password });
    if (!result.ok) {
      const error = result.reason === 'locked' ? t('login.error.locked', { until: dateTime(result.until) }) : t(`login.error.${result.reason}`);
      return showLogin(req, reply, result.reason === 'locked' ? 429 : 401, { error, loginId, rd });
    }
    const only = result.institutions.length === 1 ? result.institutions[0]!.id : null;
    // A new login in this browser ends the session it had (another user's on a shared PC, too).
    await endSessionByToken(db, req.cookies[COOKIE.session]);
    const { token, session } = await createSession(db, clock, { userId: result.user.id, certificateId: cert.id, institutionId: only });
    reply.setCookie(COOKIE.session, token, COOKIE_OPTIONS);
    if (result.user.role === 'operator') return reply.redirect('/admin', 303);
    return reply.redirect(only ? await nextStep(deps, cert, session, rd) : withReturnPath('/institutions', rd), 303);
  });

  app.get('/institutions', { schema: { querystring: query({ rd: LIMIT.returnPath }) } }, async (req, reply) => {
    const p = await requirePortal(deps, req, reply, { institution: false });
    if (!p) return reply;
    const ctx = pageContext(req, { loginId: p.user.login_id, csrf: p.session.csrf_token, role: p.user.role });
    return sendPage(reply, 200, institutionsPage(ctx, { institutions: p.institutions, csrf: p.session.csrf_token, rd: returnPath((req.query as Record<string, unknown>).rd) }));
  });

  app.post('/institutions', { schema: { body: body({ institutionId: LIMIT.institutionId, rd: LIMIT.returnPath }) } }, async (req, reply) => {
    const p = await requirePortal(deps, req, reply, { institution: false });
    if (!p) return reply;
    const body = (req.body ?? {}) as Record<string, unknown>;
    if (!tokensMatch(p.session.csrf_token, body._csrf)) return sendPage(reply, 403, errorPage(pageContext(req), req.kenshin.t('error.csrf')));
    // Only an institution this user may use: never trust the posted id alone.
    const rd = returnPath(body.rd);
    const chosen = p.institutions.find((i) => String(i.id) === String(body.institutionId));
    if (!chosen) return reply.redirect(withReturnPath('/institutions', rd), 303);
    const session = await updateSession(db, p.session, { institution_id: chosen.id });
    await db.transaction().execute((trx) =>
      appendAudit(trx, clock.now(), { actor: `user:${p.user.login_id}`, action: 'institution.chosen', tenantId: p.user.tenant_id, target: `institution:${chosen.number}`, details: { number: chosen.number } }),
    );
    return reply.redirect(await nextStep(deps, p.cert, session, rd), 303);
  });

  app.get('/home', async (req, reply) => {
    const p = await requirePortal(deps, req, reply, { institution: true });
    if (!p) return reply;
    const ctx = pageContext(req, { loginId: p.user.login_id, csrf: p.session.csrf_token, role: p.user.role });
    // One read for both what home says about renewing and the two certificates it shows.
    const pair = await renewalPairOf(db, p.cert);
    const status = renewalStatus(p.cert, pair?.presenting === 'old', clock.now(), deps.renewal.windowDays);
    // Still on the old certificate although a successor exists. A session opened after the renewal
    // means the user already came back (restarted, logged in again) and the switch did not happen:
    // say so, with the steps that work in this browser.
    const notInUse =
      pair?.presenting === 'old'
        ? { pair, platform: platformOf(req.headers['user-agent']), afterRestart: new Date(p.session.created_at).getTime() > new Date(pair.renewal.created_at).getTime() }
        : undefined;
    const fetched = pair?.renewal.client_fetched_at ? { at: pair.renewal.client_fetched_at, agent: pair.renewal.client_agent ?? 'unknown' } : undefined;
    return sendPage(
      reply,
      200,
      homePage(ctx, {
        cert: p.cert,
        now: clock.now(),
        institution: p.institutions.find((i) => i.id === p.session.institution_id)!,
        user: { loginId: p.user.login_id, role: p.user.role },
        status,
        isSuccessor: p.cert.issued_via === 'renewal',
        successorNotInUse: notInUse,
        clientFetched: fetched,
      }),
    );
  });

  app.post('/logout', { schema: { body: body() } }, async (req, reply) => {
    // Logout always ends the session on the server, whatever the certificate or the token: a
    // forged logout can only log someone out, and a cleared cookie with a live session behind it
    // would be a session the user believes ended. (Cookies are SameSite=Strict anyway.)
    await endSessionByToken(db, req.cookies[COOKIE.session]);
    reply.clearCookie(COOKIE.session, COOKIE_OPTIONS);
    return reply.redirect('/', 303);
  });
}
