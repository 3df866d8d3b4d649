import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sendPage, type AppDeps } from '../web/context.js';
import type { Portal } from '../web/routes/portal.js';
import { requireOperator as requireOperatorOf, operatorContext } from './guard.js';
import { dashboard, dashboardSort } from './dashboard.js';
import { auditCsvStream, searchAudit } from '../audit/search.js';
import { certificatePage, certificatesPage, dashboardPage, auditPage, issueFormPage, issuedPage, tenantPage, tenantsPage } from './views.js';
import { addInstitution, addTenant, addUser, generateLoginPassword, resetPassword, setUserInstitutions, setUserLocked, updateTenant } from '../tenancy/service.js';
import { tenantDetail } from './tenant-detail.js';
import { holdForDelivery, takeDelivery } from './delivery.js';
import { tokensMatch } from '../web/csrf.js';
import { errorPage } from '../web/views/refusal.js';
import { isRefusal } from '../errors.js';
import { body, LIMIT, params, query as querySchema } from '../web/input.js';
import { publishCrlsFor } from '../certificates/crl-set.js';
import { getCertificate, issueCertificate, listCertificatePage, reissueCertificate, revokeCertificate, type IssueHooks } from '../certificates/service.js';

/**
 * The operator console (/admin). Operators log in like everyone else (their own client certificate
 * and password); every page and every form checks the role on the server, forms carry CSRF tokens,
 * and every change is audited by the service it calls.
 */
export function adminRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { db } = deps.runtime.database;
  const clock = deps.runtime.clock;

  const requireOperator = (req: FastifyRequest, reply: FastifyReply) => requireOperatorOf(deps, req, reply);
  const ctxOf = operatorContext;
  const query = (req: FastifyRequest) => Object.fromEntries(Object.entries((req.query ?? {}) as Record<string, string>).filter(([k, v]) => typeof v === 'string' && v !== '' && k !== 'lang'));

  app.get('/admin', { schema: { querystring: querySchema({ after: 256, sort: LIMIT.word }) } }, async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    const { after, sort } = req.query as Record<string, unknown>;
    return sendPage(reply, 200, dashboardPage(ctxOf(req, p), await dashboard(db, clock, { after: typeof after === 'string' ? after : undefined, sort: dashboardSort(sort) })));
  });

  const serialParam = params({ serial: LIMIT.serial });
  const CERTIFICATES_PER_PAGE = 100;
  app.get('/admin/certificates', { schema: { querystring: querySchema({ tenant: LIMIT.tenantCode, within: LIMIT.word, status: LIMIT.word, q: LIMIT.search, after: LIMIT.cursor }) } }, async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    const q = query(req);
    const within = q.within && /^\d+$/.test(q.within) ? Number(q.within) : undefined;
    const status = (['active', 'expired', 'revoked', 'not_yet_valid'] as const).find((x) => x === q.status);
    // A page at a time: at a million certificates the whole list is no screen (it was all of it).
    const page = await listCertificatePage({ db, clock }, { tenantCode: q.tenant || undefined, expiringWithinDays: within, status, search: q.q, cursor: q.after || undefined, limit: CERTIFICATES_PER_PAGE });
    return sendPage(reply, 200, certificatesPage(ctxOf(req, p), { ...page, tenant: q.tenant ?? '', within: q.within ?? '', status: status ?? '', search: q.q ?? '', first: !q.after }));
  });

  app.get('/admin/certificates/:serial', { schema: { params: serialParam } }, async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    const c = await getCertificate({ db, clock }, (req.params as { serial: string }).serial);
    return sendPage(reply, 200, certificatePage(ctxOf(req, p), c, p.session.csrf_token));
  });

  app.get('/admin/certificates/new', { schema: { querystring: querySchema({ tenant: LIMIT.tenantCode, reissue: LIMIT.serial }) } }, async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    const q = query(req);
    return sendPage(reply, 200, issueFormPage(ctxOf(req, p), { tenant: q.tenant, reissue: q.reissue, csrf: p.session.csrf_token }));
  });

  const issueFields = body({ tenant: LIMIT.tenantCode, label: LIMIT.label, reissue: LIMIT.serial, key: LIMIT.word, profile: LIMIT.word });
  app.post('/admin/certificates', { schema: { body: issueFields } }, async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    const body = (req.body ?? {}) as Record<string, string>;
    if (!tokensMatch(p.session.csrf_token, body._csrf)) return sendPage(reply, 403, errorPage(ctxOf(req, p), req.kenshin.t('error.csrf')));
    const certDeps = deps.renewal;
    const common = {
      keyType: body.key === 'p256' ? ('p256' as const) : ('rsa2048' as const),
      profile: body.profile === 'modern' ? ('modern' as const) : ('compatible' as const),
      validity: { kind: 'default' as const },
      actor: `operator:${p.user.login_id}`,
    };
    let issued;
    let downloadId = '';
    const hooks: IssueHooks = { inTransaction: async (trx, row, minted, now) => void (downloadId = await holdForDelivery(trx, deps.renewal.vault, row, minted, now, p.user)) };
    try {
      issued = body.reissue
        ? await reissueCertificate(certDeps, { ...common, serial: body.reissue }, hooks)
        : await issueCertificate(certDeps, { ...common, tenantCode: body.tenant ?? '', label: body.label || undefined }, hooks);
    } catch (e) {
      if (!isRefusal(e)) throw e;
      return sendPage(reply, 400, issueFormPage(ctxOf(req, p), { tenant: body.tenant, reissue: body.reissue, csrf: p.session.csrf_token, error: e.message }));
    }
    return sendPage(
      reply,
      201,
      issuedPage(ctxOf(req, p), { serial: issued.serial, subject: issued.subject, tenantName: issued.tenant.name, tenantCode: issued.tenant.code, notAfter: issued.row.not_after, password: issued.password, downloadId }),
      { noStore: true },
    );
  });

  app.get('/admin/deliveries/:id', { schema: { params: params({ id: LIMIT.downloadId }) } }, async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    const d = await takeDelivery({ db, clock, vault: deps.renewal.vault }, (req.params as { id: string }).id, { id: p.user.id, loginId: p.user.login_id });
    return reply.header('Content-Type', 'application/x-pkcs12').header('Content-Disposition', `attachment; filename="${d.filename}"`).header('Cache-Control', 'no-store').send(Buffer.from(d.file));
  });

  app.post('/admin/certificates/:serial/revoke', { schema: { params: serialParam, body: body({ reason: LIMIT.reason, withSuccessors: LIMIT.word }) } }, async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    const body = (req.body ?? {}) as Record<string, string>;
    if (!tokensMatch(p.session.csrf_token, body._csrf)) return sendPage(reply, 403, errorPage(ctxOf(req, p), req.kenshin.t('error.csrf')));
    const serial = (req.params as { serial: string }).serial;
    const revoked = await revokeCertificate({ db, clock }, { serial, reason: body.reason, actor: `operator:${p.user.login_id}`, withSuccessors: body.withSuccessors === '1' });
    await publishCrlsFor({ db, clock, cas: await deps.runtime.caSet() }, [revoked.serial, ...revoked.alsoRevoked]);
    // The stored form, not the path as typed: "AB:CD\n…" finds the certificate but is no header value.
    return reply.redirect(`/admin/certificates/${revoked.serial}`, 303);
  });

  const tenancy = { db, clock };
  const detail = (code: string) => tenantDetail(db, clock, code);
  const showTenant = async (req: FastifyRequest, reply: FastifyReply, p: Portal, code: string, status = 200, extra: { notice?: string; error?: string } = {}) =>
    sendPage(reply, status, tenantPage(ctxOf(req, p), await detail(code), { csrf: p.session.csrf_token, ...extra }), { noStore: true });
  /** Runs one tenancy change from a console form; a refusal re-renders the page with its message. */
  const change = async (req: FastifyRequest, reply: FastifyReply, code: string, fn: (p: Portal, body: Record<string, string>, actor: string) => Promise<string | void>) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    const body = (req.body ?? {}) as Record<string, string>;
    if (!tokensMatch(p.session.csrf_token, body._csrf)) return sendPage(reply, 403, errorPage(ctxOf(req, p), req.kenshin.t('error.csrf')));
    try {
      const notice = await fn(p, body, `operator:${p.user.login_id}`);
      return notice ? showTenant(req, reply, p, code, 200, { notice }) : reply.redirect(`/admin/tenants/${encodeURIComponent(code)}`, 303);
    } catch (e) {
      if (!isRefusal(e) || e.code === 'unknown_tenant') throw e;
      return showTenant(req, reply, p, code, 400, { error: e.message });
    }
  };

  app.get('/admin/tenants', async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    const tenants = await db.selectFrom('tenants').select(['code', 'name', 'contact_email']).orderBy('code').execute();
    return sendPage(reply, 200, tenantsPage(ctxOf(req, p), { tenants, csrf: p.session.csrf_token }));
  });

  const tenantFields = body({ code: LIMIT.tenantCode, name: LIMIT.name, email: LIMIT.email });
  app.post('/admin/tenants', { schema: { body: tenantFields } }, async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    const body = (req.body ?? {}) as Record<string, string>;
    if (!tokensMatch(p.session.csrf_token, body._csrf)) return sendPage(reply, 403, errorPage(ctxOf(req, p), req.kenshin.t('error.csrf')));
    try {
      const t = await addTenant(tenancy, { code: body.code, name: body.name, email: body.email }, `operator:${p.user.login_id}`);
      return reply.redirect(`/admin/tenants/${t.code}`, 303);
    } catch (e) {
      if (!isRefusal(e)) throw e;
      const tenants = await db.selectFrom('tenants').select(['code', 'name', 'contact_email']).orderBy('code').execute();
      return sendPage(reply, 400, tenantsPage(ctxOf(req, p), { tenants, csrf: p.session.csrf_token, error: e.message }));
    }
  });

  const codeParam = params({ code: LIMIT.tenantCode });
  app.get('/admin/tenants/:code', { schema: { params: codeParam } }, async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    return showTenant(req, reply, p, (req.params as { code: string }).code);
  });
  app.post('/admin/tenants/:code', { schema: { params: codeParam, body: tenantFields } }, (req, reply) => {
    const code = (req.params as { code: string }).code;
    return change(req, reply, code, async (_p, b, actor) => void (await updateTenant(tenancy, code, { name: b.name, email: b.email }, actor)));
  });
  app.post('/admin/tenants/:code/institutions', { schema: { params: codeParam, body: body({ number: LIMIT.institutionNumber, name: LIMIT.name }) } }, (req, reply) => {
    const code = (req.params as { code: string }).code;
    return change(req, reply, code, async (_p, b, actor) => void (await addInstitution(tenancy, { tenantCode: code, number: b.number, name: b.name }, actor)));
  });
  const userFields = body({ login: LIMIT.loginId, role: LIMIT.word, institutions: LIMIT.institutionList });
  app.post('/admin/tenants/:code/users', { schema: { params: codeParam, body: userFields } }, (req, reply) => {
    const code = (req.params as { code: string }).code;
    return change(req, reply, code, async (_p, b, actor) => {
      // The first password is generated and shown once, like a reset: operators never choose one.
      const password = generateLoginPassword();
      const u = await addUser(tenancy, { tenantCode: code, loginId: b.login, password, role: b.role, institutionNumbers: (b.institutions ?? '').split(',').map((x) => x.trim()).filter(Boolean) }, actor);
      return req.kenshin.t('admin.newPassword', { login: u.login_id, password });
    });
  });
  for (const action of ['lock', 'unlock', 'reset-password', 'institutions'] as const) {
    app.post(`/admin/tenants/:code/users/:login/${action}`, { schema: { params: params({ code: LIMIT.tenantCode, login: LIMIT.loginId }), body: userFields } }, (req, reply) => {
      const { code, login } = req.params as { code: string; login: string };
      return change(req, reply, code, async (_p, b, actor) => {
        if (action === 'lock' || action === 'unlock') return void (await setUserLocked(tenancy, code, login, action === 'lock', actor));
        if (action === 'institutions') return void (await setUserInstitutions(tenancy, code, login, (b.institutions ?? '').split(',').map((x) => x.trim()).filter(Boolean), actor));
        return req.kenshin.t('admin.newPassword', { login, password: await resetPassword(tenancy, code, login, actor) });
      });
    });
  }

  const auditQuery = querySchema({ tenant: LIMIT.tenantCode, actor: LIMIT.search, action: LIMIT.search, from: LIMIT.date, to: LIMIT.date, format: LIMIT.word, before: LIMIT.cursor });
  const EVENTS_PER_PAGE = 500;
  app.get('/admin/audit', { schema: { querystring: auditQuery } }, async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    const q = query(req);
    const filter = { tenantCode: q.tenant, actor: q.actor, action: q.action, from: q.from, to: q.to };
    if (q.format === 'csv') {
      const csv = Readable.from(auditCsvStream(db, filter, { bom: true }));
      return reply.type('text/csv; charset=utf-8').header('Content-Disposition', 'attachment; filename="kenshin-audit.csv"').header('Cache-Control', 'no-store').send(csv);
    }
    const before = q.before && /^\d{1,15}$/.test(q.before) ? Number(q.before) : undefined;
    const rows = await searchAudit(db, filter, EVENTS_PER_PAGE, before);
    const older = rows.length === EVENTS_PER_PAGE ? rows[rows.length - 1]!.id : undefined;
    return sendPage(reply, 200, auditPage(ctxOf(req, p), { rows, query: q, older }));
  });
}
