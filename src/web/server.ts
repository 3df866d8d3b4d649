import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import { openRuntime, type Runtime } from '../runtime.js';
import { ensureServerCertificate } from '../ca/server-certificate.js';
import { readPassphrase } from '../ca/keystore.js';
import { effectiveStatus, daysLeft } from '../certificates/status.js';
import type { Clock } from '../clock.js';

export interface RunningServer {
  url: string;
  port: number;
  app: FastifyInstance;
  runtime: Runtime;
  close(): Promise<void>;
}

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The HTTPS listener. TLS asks for a client certificate but does not reject the handshake
 * (rejectUnauthorized: false): the application decides, so a refused user gets a page that
 * says why and what to do, not a browser error. The portal screens are built on this.
 */
export async function startServer(config: Config, opts: { clock?: Clock } = {}): Promise<RunningServer> {
  const runtime = await openRuntime(config, opts.clock ? { clock: opts.clock } : {});
  const authority = await runtime.authority();
  const tls = await ensureServerCertificate(authority, runtime.paths, config.serverNames, readPassphrase(config.caPassphrase, runtime.paths.caPassphraseFile), runtime.clock.now());
  const app = Fastify({
    logger: false,
    https: { key: tls.keyPem, cert: tls.certChainPem, ca: [authority.root.toString('pem'), authority.issuing.toString('pem')], requestCert: true, rejectUnauthorized: false },
  });

  app.get('/healthz', async () => ({ ok: true }));

  app.get('/', async (req, reply) => {
    const socket = req.raw.socket as TLSSocket;
    const peer = socket.getPeerCertificate();
    reply.type('text/html; charset=utf-8');
    if (!peer || !peer.raw) {
      reply.code(401);
      return page('証明書がありません / No client certificate', '<p>クライアント証明書が提示されませんでした。ブラウザに証明書をインポートしてから接続してください。</p><p>No client certificate was presented.</p>');
    }
    const fingerprint = peer.fingerprint256.replace(/:/g, '').toLowerCase();
    const row = await runtime.database.db.selectFrom('certificates').selectAll().where('fingerprint_sha256', '=', fingerprint).executeTakeFirst();
    if (!socket.authorized || !row) {
      reply.code(403);
      return page('この証明書は利用できません / Certificate not accepted', `<p>${escape(String(peer.subject?.CN ?? ''))}: ${escape(String(socket.authorizationError ?? 'unknown certificate'))}</p>`);
    }
    const now = runtime.clock.now();
    return page(
      '接続中の証明書 / Your certificate',
      `<dl><dt>名前 / Subject</dt><dd>${escape(row.subject)}</dd><dt>シリアル / Serial</dt><dd>${row.serial}</dd>` +
        `<dt>有効期限 / Expires</dt><dd>${row.not_after} (${daysLeft(row.not_after, now)}日)</dd><dt>状態 / Status</dt><dd>${effectiveStatus(row, now)}</dd></dl>`,
    );
  });

  await app.listen({ host: config.listen.host, port: config.listen.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.listen.port;
  const host = config.listen.host.includes(':') ? `[${config.listen.host}]` : config.listen.host;
  return {
    url: `https://${host}:${port}/`,
    port,
    app,
    runtime,
    async close() {
      await app.close();
      await runtime.close();
    },
  };
}

function page(title: string, body: string): string {
  return `<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>${escape(title)} - Kenshin Cloud</title></head><body><h1>${escape(title)}</h1>${body}</body></html>`;
}
