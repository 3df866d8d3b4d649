import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { pageContext, sendPage, type AppDeps } from '../web/context.js';
import { requirePortal, type Portal } from '../web/routes/portal.js';
import { dashboard } from './dashboard.js';
import { auditCsv, searchAudit } from './audit-log.js';
import { certificatePage, certificatesPage, dashboardPage, auditPage, forbiddenPage } from './views.js';
import { getCertificate, listCertificates } from '../certificates/service.js';

/**
 * The operator console (/admin). Operators log in like everyone else (their own client certificate
 * and password); every page checks the role on the server. These pages only read; issuing and
 * revoking are the CLI's for now.
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
    return sendPage(reply, 200, certificatePage(ctxOf(req, p), c));
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
