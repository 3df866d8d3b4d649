import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Writable } from 'node:stream';
import { createLocalJWKSet, jwtVerify, decodeProtectedHeader, type JSONWebKeySet } from 'jose';
import { makePortalWorld, loginAs } from '../helpers/portal-world.js';
import { TlsClient } from '../helpers/client.js';
import { startServer } from '../../src/web/server.js';
import { rotateGatewayKey } from '../../src/gateway/signing-key.js';

/** A real server at this log level, its log lines collected, and a logged-in client. */
async function loggedServer(level: 'debug' | 'info') {
  const w = await makePortalWorld('sqlite', { KENSHIN_LOG_LEVEL: level });
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)), done()) });
  const server = await startServer(w.config, { clock: w.clock, logStream: sink });
  w.onClose(() => server.close());
  const cert = await w.cert(400);
  const c = new TlsClient(server.url, w.ca, { file: cert.file, password: cert.password });
  await loginAs(c, 'solo');
  return { w, lines, server, cert, c };
}

test('the request log of forward auth holds no signing key, no assertion and no session token; a reload after rotate-key signs with the new key', async () => {
  const { w, lines, server, cert, c } = await loggedServer('debug');
  const assertions: string[] = [];
  for (let i = 0; i < 3; i++) {
    const r = await c.request('GET', '/auth/verify', { headers: { 'x-forwarded-uri': '/x' } });
    assert.equal(r.status, 200);
    assertions.push(String(r.headers['x-kenshin-assertion']));
  }
  const stranger = new TlsClient(server.url, w.ca, { file: cert.file, password: cert.password });
  assert.equal((await stranger.request('GET', '/auth/verify', { headers: { 'x-kenshin-assertion': assertions[0]! } })).status, 401);

  // Rotation, then the reload SIGHUP does: the next assertion has the new kid, the JWKS both keys.
  const oldKid = decodeProtectedHeader(assertions[0]!).kid;
  const rotated = await rotateGatewayKey(w.runtime.paths.gatewayKeyFile, w.clock.now());
  assert.equal((await server.reloadGatewayKeys()).kid, rotated.kid);
  const next = String((await c.request('GET', '/auth/verify')).headers['x-kenshin-assertion']);
  assert.equal(decodeProtectedHeader(next).kid, rotated.kid);
  const jwks = (await c.get('/.well-known/jwks.json')).json<JSONWebKeySet>();
  assert.deepEqual(jwks.keys.map((k) => k.kid), [rotated.kid, oldKid]);
  for (const t of [assertions[0]!, next]) await jwtVerify(t, createLocalJWKSet(jwks), { currentDate: w.clock.now() });

  const log = lines.join('\n');
  assert.match(log, /\/auth\/verify/);
  const keyFile = JSON.parse(fs.readFileSync(w.runtime.paths.gatewayKeyFile, 'utf8')) as { current: { d: string } };
  assert.doesNotMatch(log, new RegExp(keyFile.current.d.replace(/[-]/g, '\\-')), 'the private key');
  for (const a of [...assertions, next]) assert.ok(!log.includes(a.split('.')[2]!), 'an assertion');
  assert.ok(!log.includes(c.cookies.get('kenshin_session')!), 'the session token');
});

test('at info level a check that lets the request through writes no line (the proxy logs that request); a refusal does', async () => {
  const { server, w, cert, c, lines } = await loggedServer('info');
  const checks = () => lines.filter((l) => l.includes('/auth/verify'));
  assert.equal((await c.request('GET', '/auth/verify')).status, 200);
  assert.equal(checks().length, 0);
  const stranger = new TlsClient(server.url, w.ca, { file: cert.file, password: cert.password });
  assert.equal((await stranger.request('GET', '/auth/verify')).status, 401);
  await new Promise((r) => setImmediate(r));
  assert.equal(checks().length, 1);
  assert.equal(JSON.parse(checks()[0]!).res.statusCode, 401);
  // The line names the peer as the socket gave it, without parsing proxy headers.
  assert.equal(typeof JSON.parse(checks()[0]!).req.remoteAddress, 'string');
});
