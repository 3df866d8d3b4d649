import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { pageContext, sendPage, type AppDeps } from '../web/context.js';
import { requirePortal, type Portal } from '../web/routes/portal.js';
import { dashboard } from './dashboard.js';
import { auditCsv, searchAudit } from './audit-log.js';
import { certificatePage, certificatesPage, dashboardPage, auditPage, forbiddenPage, issueFormPage, issuedPage } from './views.js';
import { holdForDelivery, takeDelivery } from './delivery.js';
import { tokensMatch } from '../web/csrf.js';
import { errorPage } from '../web/views/refusal.js';
import { isRefusal } from '../errors.js';
import { publishCrl } from '../certificates/crl.js';
import { getCertificate, issueCertificate, listCertificates, reissueCertificate, revokeCertificate } from '../certificates/service.js';

/**
 * The operator console (/admin). Operators log in like everyone else (their own client certificate
 * and password); every page and every form checks the role on the server, forms carry CSRF tokens,
 * and every change is audited by the service it calls.
 */
export function adminRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { db } = deps.runtime.database;
  const clock = deps.runtime.clock;

  const requireOperator = async (req: FastifyRequest, reply: FastifyReply): Promise<Portal | undefined> => {
    const p = await requirePortal(deps, req, reply, { institution: false });
    if (!p) return undefined;
    if (p.user.role !== 'operator') {
      await sendPage(reply, 403, forbiddenPage(pageContext(req, { loginId: p.user.login_id, csrf: p.session.csrf_token })));
      return undefined;
    }
    return p;
  };
  const ctxOf = (req: FastifyRequest, p: Portal) => pageContext(req, { loginId: p.user.login_id, csrf: p.session.csrf_token });
  const query = (req: FastifyRequest) => Object.fromEntries(Object.entries((req.query ?? {}) as Record<string, string>).filter(([k, v]) => typeof v === 'string' && v !== '' && k !== 'lang'));

  app.get('/admin', async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    return sendPage(reply, 200, dashboardPage(ctxOf(req, p), await dashboard(db, clock)));
  });

  app.get('/admin/certificates', async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    const q = query(req);
    const within = q.within && /^\d+$/.test(q.within) ? Number(q.within) : undefined;
    const rows = await listCertificates({ db, clock }, { tenantCode: q.tenant, expiringWithinDays: within });
    return sendPage(reply, 200, certificatesPage(ctxOf(req, p), { rows, tenant: q.tenant ?? '', within: q.within ?? '' }));
  });

  app.get('/admin/certificates/:serial', async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    const c = await getCertificate({ db, clock }, (req.params as { serial: string }).serial);
    return sendPage(reply, 200, certificatePage(ctxOf(req, p), c, p.session.csrf_token));
  });

  app.get('/admin/certificates/new', async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    const q = query(req);
    return sendPage(reply, 200, issueFormPage(ctxOf(req, p), { tenant: q.tenant, reissue: q.reissue, csrf: p.session.csrf_token }));
  });

  app.post('/admin/certificates', async (req, reply) => {
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
    try {
      issued = body.reissue
        ? await reissueCertificate(certDeps, { ...common, serial: body.reissue })
        : await issueCertificate(certDeps, { ...common, tenantCode: body.tenant ?? '', label: body.label || undefined });
    } catch (e) {
      if (!isRefusal(e)) throw e;
      return sendPage(reply, 400, issueFormPage(ctxOf(req, p), { tenant: body.tenant, reissue: body.reissue, csrf: p.session.csrf_token, error: e.message }));
    }
    const downloadId = await holdForDelivery({ db, clock, vault: deps.renewal.vault }, issued, { id: p.user.id, loginId: p.user.login_id });
    return sendPage(
      reply,
      201,
      issuedPage(ctxOf(req, p), { serial: issued.serial, subject: issued.subject, tenantName: issued.tenant.name, tenantCode: issued.tenant.code, notAfter: issued.row.not_after, password: issued.password, downloadId }),
      { noStore: true },
    );
  });

  app.get('/admin/deliveries/:id', async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    const d = await takeDelivery({ db, clock, vault: deps.renewal.vault }, (req.params as { id: string }).id, { id: p.user.id, loginId: p.user.login_id });
    return reply.header('Content-Type', 'application/x-pkcs12').header('Content-Disposition', `attachment; filename="${d.filename}"`).header('Cache-Control', 'no-store').send(Buffer.from(d.file));
  });

  app.post('/admin/certificates/:serial/revoke', async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    const body = (req.body ?? {}) as Record<string, string>;
    if (!tokensMatch(p.session.csrf_token, body._csrf)) return sendPage(reply, 403, errorPage(ctxOf(req, p), req.kenshin.t('error.csrf')));
    const serial = (req.params as { serial: string }).serial;
    await revokeCertificate({ db, clock }, { serial, reason: body.reason, actor: `operator:${p.user.login_id}`, withSuccessors: body.withSuccessors === '1' });
    await publishCrl({ db, clock, authority: await deps.runtime.authority() });
    return reply.redirect(`/admin/certificates/${serial}`, 303);
  });

  app.get('/admin/audit', async (req, reply) => {
    const p = await requireOperator(req, reply);
    if (!p) return reply;
    const q = query(req);
    const rows = await searchAudit(db, { tenantCode: q.tenant, actor: q.actor, action: q.action, from: q.from, to: q.to }, q.format === 'csv' ? 100_000 : 500);
    if (q.format === 'csv') {
      return reply.type('text/csv; charset=utf-8').header('Content-Disposition', 'attachment; filename="kenshin-audit.csv"').header('Cache-Control', 'no-store').send('\ufeff' + auditCsv(rows));
    }
    return sendPage(reply, 200, auditPage(ctxOf(req, p), { rows, query: q }));
  });
}
