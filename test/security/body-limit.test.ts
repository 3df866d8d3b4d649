import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { makePortalWorld } from '../helpers/portal-world.js';

/**
 * Behind the shipped nginx configuration, a body larger than Kenshin accepts (16 KiB, the bodyLimit
 * in src/web/app.ts) is refused by nginx itself. With nginx's limit above Kenshin's, nginx forwarded
 * such a body, Kenshin answered 413 and closed the connection while nginx was still sending, and
 * now and then the answer was a 502 (found by the fuzzer, test/security/fuzz.ts).
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
});
