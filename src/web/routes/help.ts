import fs from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { pageContext, sendPage } from '../context.js';
import { helpDeletePage, helpImportPage } from '../views/help.js';
import { platformOf } from '../platform.js';

/** Help pages and static assets: reachable without a valid certificate (refusal pages link here). */
export function helpRoutes(app: FastifyInstance): void {
  app.get('/help/import', (req, reply) => sendPage(reply, 200, helpImportPage(pageContext(req), platformOf(req.headers['user-agent']))));
  app.get('/help/delete-old', (req, reply) => sendPage(reply, 200, helpDeletePage(pageContext(req))));

  const asset = (file: string, type: string) => {
    const body = fs.readFileSync(new URL(`../assets/${file}`, import.meta.url));
    app.get(`/assets/${file}`, (_req, reply) => reply.type(type).header('Cache-Control', 'public, max-age=300').send(body));
  };
  asset('app.css', 'text/css; charset=utf-8');
  asset('app.js', 'text/javascript; charset=utf-8');
}
