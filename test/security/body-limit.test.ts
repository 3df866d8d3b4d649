import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makePortalWorld } from '../helpers/portal-world.js';

/**
 * Behind the shipped nginx configuration, a body larger than Kenshin accepts (16 KiB, the bodyLimit
 * in src/web/app.ts) is refused by nginx itself. With nginx's limit above Kenshin's, nginx forwarded
 * such a body, Kenshin answered 413 and closed the connection while nginx was still sending, and
 * now and then the answer was a 502 (found by the fuzzer, test/security/fuzz.ts). The same for the
 * certificates nginx rejects: their requests go to Kenshin for the refusal page, without the body.
 */
describe('body size limits behind nginx', async () => {
  const w = await makePortalWorld('sqlite', {}, { via: 'nginx' });

  test('nginx answers 413 itself for a body beyond Kenshin’s 16 KiB; Kenshin still sees one at the limit', async () => {
    const c = w.client(await w.cert(300));
    const over = await c.request('POST', '/login', { raw: 'loginId=' + 'a'.repeat(20_000), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(over.status, 413);
    assert.match(over.text, /<center>nginx<\/center>|<center>nginx\/[\d.]+<\/center>/, 'nginx refused it, the body never reached Kenshin');
    // 16,384 bytes exactly: nginx passes it on, and Kenshin answers (its own page: the login ID is too long).
    const at = await c.request('POST', '/login', { raw: 'loginId=' + 'a'.repeat(16_384 - 'loginId='.length), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal(at.status, 400);
    assert.match(at.text, /<p id="error">「ログインID」が長すぎます/);
  });

  test('a certificate nginx rejects gets the refusal page whatever it posts, never a 502', async () => {
    // nginx does not apply client_max_body_size on the path it sends rejected certificates to
    // (error_page 495 = @kenshin): it forwarded any body, and Kenshin's 413 mid-body became a 502.
    const c = w.client(await w.cert(-5));
    for (const size of [0, 100, 10_000, 20_000, 100_000]) {
      const r = await c.request('POST', '/login', { raw: '_csrf=' + 'a'.repeat(size), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      assert.equal(r.status, 403, `${size} B: ${r.status}`);
      assert.match(r.text, /data-reason="expired"/);
    }
    const api = await c.request('POST', '/api/v1/certificate/renewal', { raw: JSON.stringify({ x: 'y'.repeat(30_000) }), headers: { 'content-type': 'application/json' } });
    assert.equal(api.status, 403);
    assert.equal(api.json().error, 'certificate_expired');
  });
});
