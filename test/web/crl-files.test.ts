import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makePortalWorld } from '../helpers/portal-world.js';
import { revokeCertificate } from '../../src/certificates/service.js';
import { currentCrlNamed, currentCrlNumberNamed, publishCrlsFor, storedCrlNumber, crlBundlePem, currentCrls } from '../../src/certificates/crl-set.js';
import { CrlFiles } from '../../src/web/crl-files.js';
import { DAY_MS } from '../../src/clock.js';
import { run } from '../helpers/openssl.js';

/** CrlFiles over the real CRL set, counting the loads of whole CRLs; `now` is the test's to move. */
function countingFiles(deps: () => Promise<Parameters<typeof currentCrls>[0]>) {
  const state = { loads: 0, now: Date.now() };
  const files = new CrlFiles(
    {
      one: async (name) => (state.loads++, currentCrlNamed(await deps(), name)),
      all: async () => (state.loads++, currentCrls(await deps())),
      number: async (name) => storedCrlNumber(await deps(), name),
      currentNumber: async (name) => currentCrlNumberNamed(await deps(), name),
      bundlePem: (crls) => crlBundlePem(crls, []),
    },
    () => state.now,
    5000,
  );
  return { files, state };
}

/** The CRLs are served like static files: kept ready, revalidated with ETag / Last-Modified. */
describe('CRL files', async () => {
  const w = await makePortalWorld('sqlite');
  const { db } = w.runtime.database;
  const anon = w.client();

  test('ETag, Last-Modified, Expires at nextUpdate; 304 on revalidation; the same bytes each time', async () => {
    const first = await anon.get('/crl/issuing.crl');
    assert.equal(first.status, 200);
    const etag = String(first.headers.etag);
    assert.match(etag, /^"[A-Za-z0-9_-]{22}"$/);
    assert.ok(first.headers['last-modified']);
    const nextUpdate = /Next Update: (.+)\n/.exec(run('openssl', ['crl', '-inform', 'DER', '-noout', '-nextupdate'], first.body).replace('nextUpdate=', 'Next Update: ') + '\n')![1]!;
    assert.equal(new Date(String(first.headers.expires)).getTime(), new Date(nextUpdate).getTime());
    assert.match(String(first.headers['cache-control']), /^public, max-age=\d+$/);
    const again = await anon.get('/crl/issuing.crl');
    assert.deepEqual(again.body, first.body);
    assert.equal(again.headers.etag, etag);
    const revalidated = await anon.request('GET', '/crl/issuing.crl', { headers: { 'if-none-match': etag } });
    assert.equal(revalidated.status, 304);
    assert.equal(revalidated.body.length, 0);
    const byDate = await anon.request('GET', '/crl/issuing.crl.pem', { headers: { 'if-modified-since': String(first.headers['last-modified']) } });
    assert.equal(byDate.status, 304);
    assert.equal((await anon.request('GET', '/crl/issuing.crl', { headers: { 'if-none-match': '"other"' } })).status, 200);
    const bundle = await anon.get('/crl/bundle.pem');
    assert.equal((await anon.request('GET', '/crl/bundle.pem', { headers: { 'if-none-match': String(bundle.headers.etag) } })).status, 304);
  });

  test('a revocation is served by the very next request, with a new ETag', async () => {
    const before = await anon.get('/crl/issuing.crl');
    const bundleBefore = await anon.get('/crl/bundle.pem');
    const cert = await w.cert(100);
    const revoked = await revokeCertificate({ db, clock: w.clock }, { serial: cert.row.serial, reason: 'keyCompromise', actor: 'test' });
    await publishCrlsFor({ db, clock: w.clock, cas: await w.runtime.caSet() }, [revoked.serial]);
    const after = await anon.request('GET', '/crl/issuing.crl', { headers: { 'if-none-match': String(before.headers.etag) } });
    assert.equal(after.status, 200, 'the old ETag no longer matches');
    assert.notEqual(after.headers.etag, before.headers.etag);
    assert.match(run('openssl', ['crl', '-inform', 'DER', '-noout', '-text'], after.body), new RegExp(`Serial Number: 0?${cert.row.serial.toUpperCase()}`));
    const bundleAfter = await anon.get('/crl/bundle.pem');
    assert.notEqual(bundleAfter.headers.etag, bundleBefore.headers.etag);
    const issuingPem = run('openssl', ['crl', '-inform', 'DER'], after.body);
    assert.ok(bundleAfter.text.includes(issuingPem.trim()), 'the bundle holds the new issuing CRL');
  });

  /**
   * Every few seconds the kept file is checked for staleness (a day old, a revocation whose
   * publication failed). That check must not load and re-encode the bytes when nothing changed
   * (0.2 s at 100,000 entries); it must still find a CRL that no longer lists every revocation.
   */
  test('the periodic staleness check reads no bytes while the CRL is current, and still catches a revocation left unpublished', async () => {
    const deps = async () => ({ db, clock: w.clock, cas: await w.runtime.caSet() });
    const { files, state } = countingFiles(deps);
    const first = await files.get('issuing');
    const bundle = await files.getBundle();
    assert.equal(state.loads, 2);
    state.now += 6000;
    assert.equal(await files.get('issuing'), first, 'the same file, kept');
    assert.equal(await files.getBundle(), bundle);
    assert.equal(state.loads, 2, 'a current CRL is not read again');
    // Revoked, but the publication never happened (a crash between the two): the count differs.
    const cert = await w.cert(100);
    await revokeCertificate({ db, clock: w.clock }, { serial: cert.row.serial, reason: 'superseded', actor: 'test' });
    assert.equal(await currentCrlNumberNamed(await deps(), 'issuing'), undefined, 'stale: it does not list the revocation');
    state.now += 6000;
    const next = (await files.get('issuing'))!;
    assert.notEqual(next, first);
    assert.notEqual(next.etag, first!.etag);
    assert.match(run('openssl', ['crl', '-inform', 'DER', '-noout', '-text'], next.der), new RegExp(`Serial Number: 0?${cert.row.serial.toUpperCase()}`));
    assert.notEqual((await files.getBundle()).etag, bundle.etag);
    assert.equal(state.loads, 4);
    // A day on the service's clock: due for re-signing, so not current any more.
    const number = await currentCrlNumberNamed(await deps(), 'issuing');
    assert.equal(number, await storedCrlNumber(await deps(), 'issuing'));
    w.clock.advance(DAY_MS + 60_000);
    try {
      assert.equal(await currentCrlNumberNamed(await deps(), 'issuing'), undefined);
    } finally {
      w.clock.advance(-(DAY_MS + 60_000));
    }
  });

  test('requests that find a stale CRL together wait for one publication, not one each', async () => {
    const deps = async () => ({ db, clock: w.clock, cas: await w.runtime.caSet() });
    const { files, state } = countingFiles(deps);
    await files.get('issuing');
    await files.getBundle();
    const before = await storedCrlNumber(await deps(), 'issuing');
    // Revoked with no publication (as after a crash between the two): the next requests find it stale.
    const cert = await w.cert(101);
    await revokeCertificate({ db, clock: w.clock }, { serial: cert.row.serial, reason: 'superseded', actor: 'test' });
    state.loads = 0;
    state.now += 6000; // past the periodic check
    const served = await Promise.all(Array.from({ length: 8 }, () => files.get('issuing')));
    const bundles = await Promise.all(Array.from({ length: 8 }, () => files.getBundle()));
    assert.equal(state.loads, 2, 'one load of the CRL and one of the bundle');
    assert.equal(new Set(served).size, 1, 'every request got the same file');
    assert.equal(new Set(bundles).size, 1);
    assert.equal(await storedCrlNumber(await deps(), 'issuing'), before! + 1, 'one new number, not eight');
  });
});
