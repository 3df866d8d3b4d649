import fs from 'node:fs';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { pageContext, sendPage, type AppDeps } from '../context.js';
import { helpDeletePage, helpImportPage, type HelpModel } from '../views/help.js';
import { returnPath } from '../views/layout.js';
import { platformOf } from '../platform.js';
import { optionalPortal } from './portal.js';
import { LIMIT, query } from '../input.js';

/**
 * Help pages and static assets: reachable without a valid certificate (refusal pages link here).
 * A logged-in user keeps their user menu, sees their own old and new certificate, and gets a way
 * back to the screen they opened the help from (`back`, on this site only).
 */
export function helpRoutes(app: FastifyInstance, deps: AppDeps): void {
  const helpPage = (render: (ctx: ReturnType<typeof pageContext>, m: HelpModel) => ReturnType<typeof helpImportPage>) => async (req: FastifyRequest, reply: Parameters<typeof sendPage>[0]) => {
    const p = await optionalPortal(deps, req);
    const ctx = pageContext(req, p ? { loginId: p.user.login_id, csrf: p.session.csrf_token, role: p.user.role } : undefined);
    const m: HelpModel = { platform: platformOf(req.headers['user-agent']), back: returnPath((req.query as Record<string, unknown>).back), pair: p?.pair };
    return sendPage(reply, 200, render(ctx, m));
  };
  const opts = { schema: { querystring: query({ back: LIMIT.returnPath }) } };
  app.get('/help/import', opts, helpPage(helpImportPage));
  app.get('/help/delete-old', opts, helpPage(helpDeletePage));

  const asset = (file: string, type: string) => {
    const body = fs.readFileSync(new URL(`../assets/${file}`, import.meta.url));
    app.get(`/assets/${file}`, (_req, reply) => reply.type(type).header('Cache-Control', 'public, max-age=300').send(body));
  };
  asset('app.css', 'text/css; charset=utf-8');
  asset('app.js', 'text/javascript; charset=utf-8');
}
