import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { pageContext, sendPage, type AppDeps } from '../context.js';
import { requirePortal, type Portal } from './portal.js';
import { tokensMatch } from '../csrf.js';
import { errorPage } from '../views/refusal.js';
import { forbiddenPage, tenantPage } from '../../admin/views.js';
import { tenantDetail } from '../../admin/tenant-detail.js';
import { addUser, generateLoginPassword, resetPassword, setUserInstitutions, setUserLocked } from '../../tenancy/service.js';
import { isRefusal, invalidInput } from '../../errors.js';
import { OPERATORS_TENANT } from '../../tenancy/validation.js';
import { body, LIMIT, params } from '../input.js';

/**
 * The tenant-scoped part of administration inside the portal, for a tenant's 管理者: its own users
 * (create, lock, reset password, institutions) and its certificates with their expiry dates. The
 * tenant is always the one of the logged-in user; nothing posted can name another.
 */
export function tenantAdminRoutes(app: FastifyInstance, deps: AppDeps): void {
  const { db } = deps.runtime.database;
  const clock = deps.runtime.clock;
  const tenancy = { db, clock };

  const requireTenantAdmin = async (req: FastifyRequest, reply: FastifyReply): Promise<(Portal & { code: string }) | undefined> => {
    const p = await requirePortal(deps, req, reply, { institution: true });
    if (!p) return undefined;
    if (p.user.role !== 'admin') {
      await sendPage(reply, 403, forbiddenPage(pageContext(req, { loginId: p.user.login_id, csrf: p.session.csrf_token, role: p.user.role })));
      return undefined;
    }
    const tenant = await db.selectFrom('tenants').select('code').where('id', '=', p.user.tenant_id).executeTakeFirstOrThrow();
    // The operators' tenant is never managed from here, even by a 管理者 an older version let in.
    if (tenant.code === OPERATORS_TENANT) {
      await sendPage(reply, 403, forbiddenPage(pageContext(req, { loginId: p.user.login_id, csrf: p.session.csrf_token, role: p.user.role })));
      return undefined;
    }
    return { ...p, code: tenant.code };
  };
  const show = async (req: FastifyRequest, reply: FastifyReply, p: Portal & { code: string }, status = 200, extra: { notice?: string; error?: string } = {}) =>
    sendPage(reply, status, tenantPage(pageContext(req, { loginId: p.user.login_id, csrf: p.session.csrf_token, role: p.user.role }), await tenantDetail(db, clock, p.code), { csrf: p.session.csrf_token, scope: 'tenant', ...extra }), { noStore: true });

  app.get('/tenant', async (req, reply) => {
    const p = await requireTenantAdmin(req, reply);
    return p ? show(req, reply, p) : reply;
  });

  const userFields = body({ login: LIMIT.loginId, role: LIMIT.word, institutions: LIMIT.institutionList });
  const change = (path: string, fn: (p: Portal & { code: string }, body: Record<string, string>, login: string | undefined, actor: string) => Promise<string | void>) =>
    app.post(path, { schema: { body: userFields, ...(path.includes(':login') ? { params: params({ login: LIMIT.loginId }) } : {}) } }, async (req, reply) => {
      const p = await requireTenantAdmin(req, reply);
      if (!p) return reply;
      const body = (req.body ?? {}) as Record<string, string>;
      if (!tokensMatch(p.session.csrf_token, body._csrf)) return sendPage(reply, 403, errorPage(pageContext(req), req.kenshin.t('error.csrf')));
      try {
        const notice = await fn(p, body, (req.params as { login?: string }).login, `user:${p.user.login_id}`);
        return notice ? show(req, reply, p, 200, { notice }) : reply.redirect('/tenant', 303);
      } catch (e) {
        if (!isRefusal(e)) throw e;
        return show(req, reply, p, 400, { error: e.message });
      }
    });

  const numbers = (s: string | undefined) => (s ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  change('/tenant/users', async (p, b, _login, actor) => {
    // A tenant's 管理者 creates 管理者 or 一般ユーザ of its own tenant, never operators.
    const role = b.role === 'admin' ? 'admin' : 'user';
    const password = generateLoginPassword();
    const u = await addUser(tenancy, { tenantCode: p.code, loginId: b.login, password, role, institutionNumbers: numbers(b.institutions) }, actor);
    return `${u.login_id}: ${password}`;
  });
  change('/tenant/users/:login/lock', async (p, _b, login, actor) => {
    if (login === p.user.login_id) throw invalidInput('login', 'you cannot lock yourself');
    await setUserLocked(tenancy, p.code, login ?? '', true, actor);
  });
  change('/tenant/users/:login/unlock', async (p, _b, login, actor) => void (await setUserLocked(tenancy, p.code, login ?? '', false, actor)));
  change('/tenant/users/:login/reset-password', async (p, _b, login, actor) => `${login}: ${await resetPassword(tenancy, p.code, login ?? '', actor)}`);
  change('/tenant/users/:login/institutions', async (p, b, login, actor) => void (await setUserInstitutions(tenancy, p.code, login ?? '', numbers(b.institutions), actor)));
}
