import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { Writable } from 'node:stream';
import { makeWorld, type World } from '../helpers/world.js';
import { TlsClient } from '../helpers/client.js';
import { addTenant } from '../../src/tenancy/service.js';
import { issueCertificate, revokeCertificate } from '../../src/certificates/service.js';
import { startServer } from '../../src/web/server.js';
import { answerBeforeFastify, type HotPath } from '../../src/web/before-fastify.js';
import { DAY_MS } from '../../src/clock.js';
import { certificatesChanged } from '../../src/identity/peer.js';
import tls from 'node:tls';
import { once } from 'node:events';

interface Line {
  msg: string;
  reqId?: string;
  req?: { method: string; url: string; host?: string; remoteAddress?: string };
  res?: { statusCode: number };
  responseTime?: number;
}

async function serve(level: 'info' | 'debug') {
  const w = await makeWorld('sqlite', { env: { KENSHIN_LISTEN: '127.0.0.1:0', KENSHIN_MINT_WORKERS: '0', KENSHIN_LOG_LEVEL: level, KENSHIN_LOG_FORMAT: 'json' } });
  await addTenant({ db: w.runtime.database.db, clock: w.clock }, { code: 'T0001', name: '山田クリニック' }, 'test');
  const lines: Line[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(...chunk.toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line)), done()) });
  const server = await startServer(w.config, { clock: w.clock, logStream: sink });
  w.onClose(() => server.close());
  const ca = fs.readFileSync(w.runtime.paths.rootCert, 'utf8');
  const cert = async (days: number) => {
    const now = w.clock.now().getTime();
    const r = await issueCertificate(await w.runtime.certificateDeps(), { tenantCode: 'T0001', keyType: 'p256', profile: 'compatible', validity: { kind: 'explicit', notBefore: new Date(now - 1000 * DAY_MS), notAfter: new Date(now + days * DAY_MS) }, actor: 'test' });
    return { row: r.row, client: new TlsClient(server.url, ca, { file: r.pkcs12, password: r.password }) };
  };
  /** The request lines written for GET /api/v1/certificate (or another URL), in order. */
  const stateLines = (url = '/api/v1/certificate') => lines.filter((l) => l.msg === 'request completed' && l.req?.url === url);
  return { w, cert, stateLines, server, ca };
}

/** Every header but the date, which moves between two responses. */
/**
 * The hot path answers only while the certificate's row is fresh (1 s, identity/peer.ts). Dropping
 * the kept rows sends the next request through the route, which looks the row up again: the request
 * after it then finds it fresh, however slow the machine.
 */
async function primed(client: TlsClient) {
  certificatesChanged();
  await client.get('/api/v1/certificate');
}

const comparable = (headers: http.IncomingHttpHeaders) => Object.fromEntries(Object.entries(headers).filter(([k]) => k !== 'date'));

describe('GET /api/v1/certificate before Fastify', async () => {
  const s = await serve('info');
  const w: World = s.w;

  test('the hot path gives the route’s answer: status, headers, body and the request line', async () => {
    const { client } = await s.cert(60);
    // The first request looks the certificate up (the route); the next finds its row at hand.
    const byRoute = await client.get('/api/v1/certificate');
    await primed(client);
    const hot = await client.get('/api/v1/certificate');
    const [first, , second] = s.stateLines().slice(-3);
    assert.match(first!.reqId ?? '', /^req-/, 'the first request went through Fastify');
    assert.match(second!.reqId ?? '', /^hot-/, 'the second was answered before Fastify');
    assert.equal(hot.status, 200);
    assert.equal(hot.status, byRoute.status);
    assert.deepEqual(comparable(hot.headers), comparable(byRoute.headers));
    assert.deepEqual(hot.json(), byRoute.json());
    assert.equal(hot.json<{ eligible: boolean }>().eligible, true);
    // The same line as the route's: who asked, from where, and what was answered.
    for (const k of ['method', 'url', 'host', 'remoteAddress'] as const) assert.equal(second!.req?.[k], first!.req?.[k], k);
    assert.equal(second!.res?.statusCode, 200);
    assert.equal(typeof second!.responseTime, 'number');
  });

  test('what changes is seen by the very next request: a renewal started, a revocation', async () => {
    const { row, client } = await s.cert(30);
    await client.get('/api/v1/certificate');
    assert.equal((await client.get('/api/v1/certificate')).json<{ successor: unknown }>().successor, null);
    const started = await client.request('POST', '/api/v1/certificate/renewal', { json: {} });
    assert.equal(started.status, 201);
    await primed(client);
    const after = await client.get('/api/v1/certificate');
    assert.equal(s.stateLines().at(-1)!.reqId?.startsWith('hot-'), true, 'answered before Fastify');
    assert.deepEqual(after.json<{ reason: string; successor: unknown }>().successor, { serial: started.json<{ serial: string }>().serial, notAfter: started.json<{ notAfter: string }>().notAfter, takenUp: false });
    assert.equal(after.json<{ reason: string }>().reason, 'already_renewed');
    await revokeCertificate({ db: w.runtime.database.db, clock: w.clock }, { serial: row.serial, reason: 'keyCompromise', actor: 'test' });
    const refused = await client.get('/api/v1/certificate');
    assert.equal(refused.status, 403);
    assert.equal(refused.json<{ error: string }>().error, 'certificate_revoked');
  });

  test('a query string, HEAD and an expired certificate are the route’s', async () => {
    const { client } = await s.cert(10);
    await primed(client);
    const withQuery = await client.get('/api/v1/certificate?lang=en');
    assert.equal(withQuery.status, 200);
    assert.match(s.stateLines('/api/v1/certificate?lang=en').at(-1)?.reqId ?? '', /^req-/);
    // The route's onRequest hook remembers the language asked for; the hot path never sees ?lang.
    assert.match(String(withQuery.headers['set-cookie']), /kenshin_lang=en/);
    await primed(client);
    const head = await client.request('HEAD', '/api/v1/certificate');
    assert.equal(head.status, 200);
    const headLine = s.stateLines().at(-1)!;
    assert.equal(headLine.req?.method, 'HEAD');
    assert.match(headLine.reqId ?? '', /^req-/);
    const expired = await s.cert(-1);
    await expired.client.get('/api/v1/certificate');
    const gone = await expired.client.get('/api/v1/certificate');
    assert.equal(gone.status, 403);
    assert.equal(gone.json<{ error: string }>().error, 'certificate_expired');
    assert.match(s.stateLines().at(-1)!.reqId ?? '', /^req-/);
  });
});

describe('closing, a kept-alive client is let go as Fastify lets it go', async () => {
  const s = await serve('info');
  test('a request that arrives on a busy connection after close() is Fastify’s, not a hot answer', async () => {
    const now = s.w.clock.now().getTime();
    // RSA: the renewal takes long enough (the key is made on the thread pool) to close meanwhile.
    const r = await issueCertificate(await s.w.runtime.certificateDeps(), { tenantCode: 'T0001', keyType: 'rsa2048', profile: 'compatible', validity: { kind: 'explicit', notBefore: new Date(now - 1000 * DAY_MS), notAfter: new Date(now + 60 * DAY_MS) }, actor: 'test' });
    const client = new TlsClient(s.server.url, s.ca, { file: r.pkcs12, password: r.password });
    await primed(client);
    const url = new URL(s.server.url);
    const socket = tls.connect({ host: url.hostname, port: Number(url.port), ca: s.ca, pfx: Buffer.from(r.pkcs12), passphrase: r.password });
    await once(socket, 'secureConnect');
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
    const ended = once(socket, 'close');
    // Pipelined: the state query waits on the connection behind the renewal being minted.
    socket.write(`POST /api/v1/certificate/renewal HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`);
    socket.write(`GET /api/v1/certificate HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
    await new Promise((r) => setTimeout(r, 20));
    const closed = s.server.close();
    await ended;
    await closed;
    const statuses = [...received.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));
    assert.equal(statuses[0], 201, received.slice(0, 300));
    // What Fastify does with it — a 503 with Connection: close, or the connection closed once the
    // renewal is answered — never a hot 200 that keeps the connection, and so the close, waiting.
    assert.ok(statuses[1] === undefined || statuses[1] === 503, received);
    if (statuses[1] === 503) assert.match(received.slice(received.lastIndexOf('HTTP/1.1 ')), /\r\nconnection: close\r\n/i);
  });
});

describe('with LOG_LEVEL=debug every request goes through Fastify', async () => {
  const s = await serve('debug');
  test('no hot-path answers', async () => {
    const { client } = await s.cert(60);
    for (let i = 0; i < 3; i++) assert.equal((await client.get('/api/v1/certificate')).status, 200);
    assert.equal(s.stateLines().length, 3);
    assert.ok(s.stateLines().every((l) => l.reqId?.startsWith('req-')));
  });
});

describe('answerBeforeFastify', () => {
  test('a path that declines, throws or fails hands the request on untouched; a POST is never matched', async () => {
    const errors: unknown[] = [];
    const fallbacks: string[] = [];
    const server = http.createServer((req, res) => (fallbacks.push(req.url!), res.end(`fallback ${req.method} ${req.url}`)));
    const paths: HotPath[] = [
      { matches: (u) => u === '/hot', answer: (_req, res) => (res.end('hot'), true) },
      { matches: (u) => u === '/declines', answer: async () => false },
      {
        matches: (u) => u === '/throws',
        answer: () => {
          throw new Error('boom');
        },
      },
      { matches: (u) => u === '/rejects', answer: () => Promise.reject(new Error('later')) },
      {
        matches: (u) => u === '/answers-then-throws',
        answer: (_req, res) => {
          res.end('answered');
          throw new Error('after');
        },
      },
      {
        matches: (u) => u === '/answers-then-rejects',
        answer: async (_req, res) => {
          res.end('answered');
          await Promise.resolve();
          throw new Error('after, later');
        },
      },
    ];
    let enabled = true;
    answerBeforeFastify(server, paths, { enabled: () => enabled, onError: (e) => errors.push(e) });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const ask = (method: string, path: string) =>
      new Promise<string>((resolve, reject) => {
        http
          .request({ host: '127.0.0.1', port, method, path }, (res) => {
            let b = '';
            res.on('data', (c: Buffer) => (b += c.toString()));
            res.on('end', () => resolve(b));
          })
          .on('error', reject)
          .end();
      });
    try {
      assert.equal(await ask('GET', '/hot'), 'hot');
      assert.equal(await ask('POST', '/hot'), 'fallback POST /hot');
      assert.equal(await ask('GET', '/declines'), 'fallback GET /declines');
      assert.equal(await ask('GET', '/throws'), 'fallback GET /throws');
      assert.equal(await ask('GET', '/rejects'), 'fallback GET /rejects');
      assert.equal(await ask('GET', '/other'), 'fallback GET /other');
      // An answer already sent stands: Fastify is not asked to answer it again.
      assert.equal(await ask('GET', '/answers-then-throws'), 'answered');
      assert.equal(await ask('GET', '/answers-then-rejects'), 'answered');
      assert.deepEqual(fallbacks, ['/hot', '/declines', '/throws', '/rejects', '/other']);
      assert.deepEqual(
        errors.map((e) => (e as Error).message),
        ['boom', 'later', 'after', 'after, later'],
      );
      enabled = false;
      assert.equal(await ask('GET', '/hot'), 'fallback GET /hot');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
