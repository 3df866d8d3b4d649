import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Writable } from 'node:stream';
import { makeWorld } from '../helpers/world.js';
import { TlsClient } from '../helpers/client.js';
import { addInstitution, addTenant, addUser } from '../../src/tenancy/service.js';
import { issueCertificate } from '../../src/certificates/service.js';
import { startServer } from '../../src/web/server.js';
import { DAY_MS } from '../../src/clock.js';

test('the request log of a full renewal holds no password, package password, key or session token', async () => {
  const w = await makeWorld('sqlite', { env: { KENSHIN_LISTEN: '127.0.0.1:0', KENSHIN_MINT_WORKERS: '0', KENSHIN_LOG_LEVEL: 'debug' } });
  const deps = { db: w.runtime.database.db, clock: w.clock };
  const loginPassword = 'a very secret login password';
  await addTenant(deps, { code: 'T0001', name: '山田クリニック' }, 'test');
  await addInstitution(deps, { tenantCode: 'T0001', number: '1312345678', name: '本院' }, 'test');
  await addUser(deps, { tenantCode: 'T0001', loginId: 'solo', password: loginPassword, institutionNumbers: ['1312345678'] }, 'test');
  const now = w.clock.now().getTime();
  const cert = await issueCertificate(await w.runtime.certificateDeps(), {
    tenantCode: 'T0001',
    keyType: 'p256',
    profile: 'compatible',
    validity: { kind: 'explicit', notBefore: new Date(now - 1000 * DAY_MS), notAfter: new Date(now + 60 * DAY_MS) },
    actor: 'test',
  });

  const lines: string[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)), done()) });
  const server = await startServer(w.config, { clock: w.clock, logStream: sink });
  w.onClose(() => server.close());
  const c = new TlsClient(server.url, fs.readFileSync(w.runtime.paths.rootCert, 'utf8'), { file: cert.pkcs12, password: cert.password });

  const page = await c.get('/');
  const check = await c.follow(await c.submit(page, '/login', { loginId: 'solo', password: loginPassword }));
  const confirm = await c.get('/renewal/confirm');
  assert.match(check.text + confirm.text, /開始する/);
  const save = await c.follow(await c.submit(confirm, '/renewal'));
  const revealed = await c.follow(await c.submit(save, '/renewal/package/password'));
  const packagePassword = /id="p12-password" class="password">([^<]+)</.exec(revealed.text)?.[1];
  assert.ok(packagePassword);
  const file = await c.get('/renewal/package/download');
  assert.equal(file.status, 200);
  const api = await c.request('POST', '/api/v1/certificate/renewal', { json: {} });
  const apiPass = api.json<{ pass: string }>().pass;

  assert.ok(lines.length >= 8, `request lines were logged (${lines.length})`);
  for (const line of lines) JSON.parse(line); // every line is JSON
  const log = lines.join('\n');
  assert.match(log, /"msg":"renewal started"/);
  // One line per request, when it completes: what was asked and what was answered.
  const completed = lines.map((l) => JSON.parse(l) as { msg: string; req?: { method: string; url: string }; res?: { statusCode: number } }).filter((l) => l.msg === 'request completed');
  assert.ok(completed.some((l) => l.req?.method === 'POST' && l.req.url === '/api/v1/certificate/renewal' && l.res?.statusCode === 200), JSON.stringify(completed.map((l) => [l.req?.method, l.req?.url, l.res?.statusCode])));
  assert.ok(completed.every((l) => l.req?.url && l.res?.statusCode));
  assert.doesNotMatch(log, /incoming request/);
  const secrets = {
    'the login password': loginPassword,
    'the package password': packagePassword!,
    'the API package password': apiPass,
    'the session token': c.cookies.get('kenshin_session')!,
    'the issued .p12': file.body.subarray(0, 48).toString('base64'),
    'the client .p12 password': cert.password,
  };
  for (const [what, secret] of Object.entries(secrets)) assert.ok(!log.includes(secret), `${what} must not be in the log`);
  assert.doesNotMatch(log, /PRIVATE KEY/);
});

test('on a terminal the log is readable lines, not JSON, and still redacted; elsewhere JSON', async () => {
  const { requestLogger } = await import('../../src/web/logging.js');
  const capture = (isTTY: boolean) => {
    let out = '';
    const sink = Object.assign(new Writable({ write: (chunk: Buffer, _enc, done) => ((out += chunk.toString('utf8')), done()) }), { isTTY });
    return { sink, text: () => out };
  };
  const tty = capture(true);
  requestLogger('info', tty.sink).info({ req: { headers: { cookie: 'kenshin_session=SECRET' } }, password: 'hunter2' }, 'request completed');
  assert.match(tty.text(), /request completed/);
  assert.throws(() => JSON.parse(tty.text().trim()), 'not a JSON line');
  assert.doesNotMatch(tty.text(), /SECRET|hunter2/);
  const pipe = capture(false);
  requestLogger('info', pipe.sink).info({ password: 'hunter2' }, 'request completed');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal((JSON.parse(pipe.text().trim()) as { msg: string }).msg, 'request completed');
  const forced = capture(true);
  requestLogger('info', forced.sink, 'json').info('x');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal((JSON.parse(forced.text().trim()) as { msg: string }).msg, 'x', 'KENSHIN_LOG_FORMAT=json on a terminal');
});
