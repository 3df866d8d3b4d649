import type { FastifyReply, FastifyRequest } from 'fastify';
import { pageContext, sendPage, type AppDeps } from '../web/context.js';
import { requirePortal, type Portal } from '../web/routes/portal.js';
import { forbiddenPage } from './views.js';

/**
 * Every console page and form starts here: a logged-in session bound to this certificate, and
 * the operator role, checked on the server. Anyone else gets a 403 page (or the login).
 */
export async function requireOperator(deps: AppDeps, req: FastifyRequest, reply: FastifyReply): Promise<Portal | undefined> {
  const p = await requirePortal(deps, req, reply, { institution: false });
  if (!p) return undefined;
  if (p.user.role !== 'operator') {
    await sendPage(reply, 403, forbiddenPage(operatorContext(req, p)));
    return undefined;
  }
  return p;
}

export const operatorContext = (req: FastifyRequest, p: Portal) => pageContext(req, { loginId: p.user.login_id, csrf: p.session.csrf_token, role: p.user.role });
