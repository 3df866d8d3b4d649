import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makePortalWorld } from '../helpers/portal-world.js';
import { kenshin } from '../helpers/cli.js';
import { loadConfig } from '../../src/config.js';

/** The JSON API's cross-site and Host-header defences, and proxy mode's listener default. */
describe('JSON API hardening', async () => {
  const w = await makePortalWorld('sqlite');

  test('a foreign Referer without Origin is a cross-site request; our own Referer is not', async () => {
    const foreign = await w.client(await w.cert(50)).request('POST', '/api/v1/certificate/renewal', { json: {}, headers: { referer: 'https://evil.example/page' } });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.json().error, 'cross_site_request');
    const garbage = await w.client(await w.cert(50)).request('POST', '/api/cert', { json: {}, headers: { referer: 'not a url' } });
    assert.equal(garbage.json().error, 'cross_site_request');
    const c = w.client(await w.cert(50));
    const own = await c.request('POST', '/api/v1/certificate/renewal', { json: {}, headers: { referer: new URL('/home', c.base).toString() } });
    assert.equal(own.status, 201, own.text);
    assert.equal(await w.runtime.database.db.selectFrom('renewals').select('id').execute().then((r) => r.length), 1, 'only the same-site request renewed');
  });

  test('JSON POSTs take application/json bodies only (text/plain is what a cross-site form can send)', async () => {
    const cert = await w.cert(50);
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'text/plain; charset=utf-8']) {
      const r = await w.client(cert).request('POST', '/api/cert', { raw: '{}', headers: { 'content-type': type } });
      assert.equal(r.status, 415, `${type}: ${r.text}`);
      assert.equal(r.json().error, 'unsupported_media_type');
    }
    assert.equal((await w.runtime.database.db.selectFrom('renewals').select('id').where('predecessor_id', '=', cert.row.id).execute()).length, 0);
    // What monsiaj and glclient send.
    const ok = await w.client(cert).request('POST', '/api/cert', { raw: '{}', headers: { 'content-type': 'application/json; charset=UTF-8' } });
    assert.equal(ok.status, 200, ok.text);
  });

  test('the package uri is never built from a foreign Host header', async () => {
    const c = w.client(await w.cert(50));
    const r = await c.request('POST', '/api/cert', { json: {}, headers: { host: 'evil.example' }, servername: 'localhost' });
    assert.equal(r.status, 200, r.text);
    const uri = r.json<{ uri: string }>().uri;
    assert.doesNotMatch(uri, /evil/);
    assert.match(uri, /^https:\/\/127\.0\.0\.1:\d+\/api\/v1\/renewals\//);
  });

  test('KENSHIN_PUBLIC_URL, when set, is the base of every absolute link', async () => {
    const pw = await makePortalWorld('sqlite', { KENSHIN_PUBLIC_URL: 'https://kenshin.example.jp' });
    const r = await pw.client(await pw.cert(50)).request('POST', '/api/cert', { json: {} });
    assert.match(r.json<{ uri: string }>().uri, /^https:\/\/kenshin\.example\.jp\/api\/v1\/renewals\/[A-Za-z0-9_-]+\/pkcs12$/);
    assert.throws(() => loadConfig({ dataDir: pw.dir }, { KENSHIN_PUBLIC_URL: 'javascript:alert(1)' }), /KENSHIN_PUBLIC_URL/);
  });

  test('proxy mode listens on a unix socket by default, and says so when it is put on TCP', async () => {
    const cfg = loadConfig({ dataDir: w.dir }, { KENSHIN_MODE: 'proxy' });
    assert.ok('socket' in cfg.listen && cfg.listen.socket.endsWith('/kenshin.sock'), JSON.stringify(cfg.listen));
    const env = { KENSHIN_DATA_DIR: w.dir, KENSHIN_CA_PASSPHRASE: 'test-passphrase', KENSHIN_MODE: 'proxy', KENSHIN_LISTEN: '127.0.0.1:8080' };
    const check = await kenshin(['config', 'check'], { env });
    assert.match(check.stdout + check.stderr, /any local process can send the certificate header/);
    const onSocket = await kenshin(['config', 'check'], { env: { ...env, KENSHIN_LISTEN: undefined } });
    assert.doesNotMatch(onSocket.stdout + onSocket.stderr, /any local process/);
  });
});
