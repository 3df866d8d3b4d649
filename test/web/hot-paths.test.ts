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
  /** The request lines written for GET /api/v1/certificate, in order. */
  const stateLines = () => lines.filter((l) => l.msg === 'request completed' && l.req?.url === '/api/v1/certificate');
  return { w, cert, stateLines };
}

/** Every header but the date, which moves between two responses. */
const comparable = (headers: http.IncomingHttpHeaders) => Object.fromEntries(Object.entries(headers).filter(([k]) => k !== 'date'));

describe('GET /api/v1/certificate before Fastify', async () => {
  const s = await serve('info');
  const w: World = s.w;

  test('the hot path gives the route’s answer: status, headers, body and the request line', async () => {
    const { client } = await s.cert(60);
    // The first request looks the certificate up (the route); the next finds its row at hand.
    const byRoute = await client.get('/api/v1/certificate');
    const hot = await client.get('/api/v1/certificate');
    const [first, second] = s.stateLines().slice(-2);
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
    await client.get('/api/v1/certificate');
    const before = s.stateLines().length;
    const withQuery = await client.get('/api/v1/certificate?lang=en');
    assert.equal(withQuery.status, 200);
    assert.equal(s.stateLines().length, before, 'a URL with a query is another URL in the log, and not the hot path’s');
    const head = await client.request('HEAD', '/api/v1/certificate');
    assert.equal(head.status, 200);
    const expired = await s.cert(-1);
    await expired.client.get('/api/v1/certificate');
    const gone = await expired.client.get('/api/v1/certificate');
    assert.equal(gone.status, 403);
    assert.equal(gone.json<{ error: string }>().error, 'certificate_expired');
    assert.match(s.stateLines().at(-1)!.reqId ?? '', /^req-/);
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
    const server = http.createServer((req, res) => res.end(`fallback ${req.method} ${req.url}`));
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
      assert.deepEqual(
        errors.map((e) => (e as Error).message),
        ['boom', 'later'],
      );
      enabled = false;
      assert.equal(await ask('GET', '/hot'), 'fallback GET /hot');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
