import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { makePortalWorld } from '../helpers/portal-world.js';
import { localPath } from '../../src/web/views/layout.js';

/** Links built from the request stay on this site (an outside review: `GET //evil.example/x`). */
describe('links built from the request path', async () => {
  const w = await makePortalWorld('sqlite');

  /** A raw request line, as a client may send it (Node's own client would normalise the path). */
  const raw = (target: string, cert: { file: Uint8Array; password: string }) =>
    new Promise<string>((resolve, reject) => {
      const url = new URL(w.server.url);
      const s = tls.connect({ host: url.hostname, port: Number(url.port), ca: w.ca, pfx: Buffer.from(cert.file), passphrase: cert.password }, () => {
        s.write(`GET ${target} HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`);
      });
      let out = '';
      s.on('data', (d: Buffer) => (out += d.toString('utf8')));
      s.on('end', () => resolve(out));
      s.on('error', reject);
    });

  test('the language switch never points at another host', async () => {
    const cert = await w.cert(300);
    for (const target of ['//evil.example/x', '/\\evil.example/x', '//evil.example', '/%2F%2Fevil.example']) {
      const page = await raw(target, cert);
      const href = /class="lang" href="([^"]*)"/.exec(page)?.[1];
      assert.ok(href, `${target}: ${page.slice(0, 300)}`);
      assert.ok(href.startsWith('/') && !href.startsWith('//') && !href.startsWith('/\\'), `${target} gave href=${href}`);
      assert.equal(new URL(href, 'https://kenshin.example.jp/').host, 'kenshin.example.jp', `${target} gave href=${href}`);
    }
  });

  test('localPath keeps ordinary paths and turns everything else into /', () => {
    assert.equal(localPath('/renewal/check?x=1'), '/renewal/check');
    assert.equal(localPath('/'), '/');
    for (const bad of ['//evil.example/x', '/\\evil.example', '\\\\evil', 'https://evil.example/', '', '/a b']) assert.equal(localPath(bad), '/', bad);
  });
});
