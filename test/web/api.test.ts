import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { testDialects } from '../helpers/databases.js';
import { makePortalWorld } from '../helpers/portal-world.js';
import { revokeCertificate } from '../../src/certificates/service.js';
import { run } from '../helpers/openssl.js';
import { DAY_MS } from '../../src/clock.js';
import { threeYearsAfter } from '../helpers/dates.js';

for (const dialect of testDialects()) {
  describe(`JSON API over mTLS on ${dialect}`, async () => {
    const w = await makePortalWorld(dialect);
    const db = w.runtime.database.db;

    test('window edges: 91, 90 and 1 days left, and expired by one second', async () => {
      const status = async (ms: number) => w.client(await w.cert(ms / DAY_MS)).get('/api/v1/certificate');
      const d91 = await status(91 * DAY_MS);
      assert.equal(d91.status, 200);
      assert.equal(d91.json().eligible, false);
      assert.equal(d91.json().reason, 'not_in_window');
      assert.equal(d91.json().daysLeft, 91);
      const d90 = (await status(90 * DAY_MS)).json<{ eligible: boolean; daysLeft: number; window: { start: string; end: string; days: number } }>();
      assert.equal(d90.eligible, true);
      assert.equal(d90.daysLeft, 90);
      assert.equal(d90.window.start, w.clock.now().toISOString());
      assert.equal(d90.window.days, 90);
      const d1 = (await status(1 * DAY_MS)).json();
      assert.equal(d1.eligible, true);
      assert.equal(d1.daysLeft, 1);
      const gone = await status(-1000);
      assert.equal(gone.status, 403);
      assert.deepEqual(Object.keys(gone.json()).sort(), ['error', 'message']);
      assert.equal(gone.json().error, 'certificate_expired');
    });

    test('renewal: 201 with the package, a retry 200 with the same one, the uri serves the .p12', async () => {
      const cert = await w.cert(60);
      const c = w.client(cert);
      const first = await c.request('POST', '/api/v1/certificate/renewal', { json: {} });
      assert.equal(first.status, 201);
      const body = first.json<{ id: string; uri: string; pass: string; serial: string; notAfter: string }>();
      assert.match(body.uri, /^https:\/\/127\.0\.0\.1:\d+\/api\/v1\/renewals\/[A-Za-z0-9_-]{32}\/pkcs12$/);
      assert.equal(body.notAfter, threeYearsAfter());
      const again = await c.request('POST', '/api/v1/certificate/renewal', { json: {} });
      assert.equal(again.status, 200);
      assert.deepEqual(again.json(), body);
      const p12 = await c.get(body.uri);
      assert.equal(p12.status, 200);
      assert.equal(p12.headers['cache-control'], 'no-store');
      const pem = run('openssl', ['pkcs12', '-nokeys', '-clcerts', '-passin', `pass:${body.pass}`], p12.body);
      assert.match(run('openssl', ['x509', '-noout', '-serial'], pem), new RegExp(body.serial, 'i'));
      // Nobody else gets it, even with the URI.
      const other = await w.cert(300);
      const stolen = await w.client(other).get(body.uri);
      assert.equal(stolen.status, 403);
      assert.equal(stolen.json().error, 'not_your_package');
      // The successor itself may fetch it, and its first request marks the renewal taken up.
      const succ = w.client({ file: p12.body, password: body.pass });
      const mine = (await succ.get('/api/v1/certificate')).json<{ serial: string; successor: unknown }>();
      assert.equal(mine.serial, body.serial);
      const info = (await c.get('/api/v1/certificate')).json<{ reason: string; successor: { serial: string; takenUp: boolean } }>();
      assert.equal(info.reason, 'already_renewed');
      assert.deepEqual(info.successor, { serial: body.serial, notAfter: body.notAfter, takenUp: true });
    });

    test('monsiaj: POST /api/cert with {} → 200 {uri, pass}, absolute uri, GET → 200 .p12', async () => {
      const cert = await w.cert(10);
      const c = w.client(cert);
      const r = await c.request('POST', '/api/cert', { json: {}, headers: { accept: 'application/json' } });
      assert.equal(r.status, 200);
      const { uri, pass } = r.json<{ uri: string; pass: string }>();
      assert.deepEqual(Object.keys(r.json()).sort(), ['pass', 'uri']);
      assert.ok(new URL(uri).protocol === 'https:');
      const file = await c.get(uri);
      assert.equal(file.status, 200);
      assert.match(run('openssl', ['pkcs12', '-info', '-noout', '-passin', `pass:${pass}`], file.body), /MAC: sha1/);
    });

    test('20 concurrent renewal requests over TLS: exactly one successor', async () => {
      const cert = await w.cert(45);
      const results = await Promise.all(Array.from({ length: 20 }, () => w.client(cert).request('POST', '/api/v1/certificate/renewal', { json: {} })));
      assert.deepEqual(results.map((r) => r.status).filter((s) => s !== 200 && s !== 201), []);
      assert.equal(results.filter((r) => r.status === 201).length, 1);
      assert.equal(new Set(results.map((r) => r.json().serial)).size, 1);
      assert.equal((await db.selectFrom('certificates').select('id').where('predecessor_id', '=', cert.row.id).execute()).length, 1);
    });

    test('the CRL is public at a stable URL, in DER and PEM', async () => {
      const revoked = await w.cert(100);
      await revokeCertificate({ db, clock: w.clock }, { serial: revoked.row.serial, reason: 'keyCompromise', actor: 'test' });
      const anon = w.client();
      const der = await anon.get('/crl/issuing.crl');
      assert.equal(der.status, 200);
      assert.equal(der.headers['content-type'], 'application/pkix-crl');
      assert.match(run('openssl', ['crl', '-inform', 'DER', '-noout', '-text'], der.body), new RegExp(`Serial Number: 0?${revoked.row.serial.toUpperCase()}`));
      const pem = await anon.get('/crl/issuing.crl.pem');
      assert.match(pem.text, /^-----BEGIN X509 CRL-----/);
    });

    test('Prometheus metrics on the loopback port: certificates by state and expiry, refusals, renewals, durations', async () => {
      assert.ok(w.server.metricsUrl);
      await w.client().get('/api/v1/certificate'); // a refusal: no certificate
      const res = await fetch(w.server.metricsUrl!);
      assert.equal(res.status, 200);
      const text = await res.text();
      const value = (re: RegExp) => Number(re.exec(text)?.[1]);
      const active = await db.selectFrom('certificates').select((eb) => eb.fn.countAll<number>().as('n')).where('status', '=', 'active').where('not_after', '>', w.clock.now().toISOString()).executeTakeFirstOrThrow();
      assert.equal(value(/^kenshin_certificates\{state="active"\} (\d+)$/m), Number(active.n));
      assert.ok(value(/^kenshin_certificates\{state="revoked"\} (\d+)$/m) >= 1);
      assert.ok(value(/^kenshin_certificates_expiring\{within_days="90"\} (\d+)$/m) >= value(/^kenshin_certificates_expiring\{within_days="15"\} (\d+)$/m));
      assert.ok(value(/^kenshin_refusals_total\{reason="none"\} (\d+)$/m) >= 1);
      assert.ok(value(/^kenshin_renewals_total\{result="created"\} (\d+)$/m) >= 1);
      assert.match(text, /^kenshin_http_request_duration_seconds_count\{route="\/api\/v1\/certificate",method="GET",status="401"\} \d+$/m);
      assert.equal((await fetch(w.server.metricsUrl!.replace('/metrics', '/other'))).status, 404);
    });

    test('refusals are JSON with stable codes', async () => {
      assert.equal((await w.client().get('/api/v1/certificate')).json().error, 'no_certificate');
      const early = await w.cert(200);
      const r = await w.client(early).request('POST', '/api/v1/certificate/renewal', { json: {} });
      assert.equal(r.status, 409);
      assert.equal(r.json().error, 'not_in_window');
      assert.ok(r.json().windowStart);
      const revoked = await w.cert(50);
      await revokeCertificate({ db, clock: w.clock }, { serial: revoked.row.serial, actor: 'test' });
      assert.equal((await w.client(revoked).request('POST', '/api/cert', { json: {} })).json().error, 'certificate_revoked');
      const cross = await w.client(await w.cert(50)).request('POST', '/api/v1/certificate/renewal', { json: {}, headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' } });
      assert.equal(cross.status, 403);
      assert.equal(cross.json().error, 'cross_site_request');
      const bad = await w.client(await w.cert(50)).request('POST', '/api/v1/certificate/renewal', { headers: { 'content-type': 'application/json' } });
      assert.ok(bad.status >= 400 && bad.status < 500, `status ${bad.status}`);
      assert.equal(bad.json().error, 'bad_request');
      assert.equal((await w.client(await w.cert(50)).get('/api/v1/nope')).json().error, 'not_found');
    });
  });
}
