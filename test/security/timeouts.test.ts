import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { makePortalWorld } from '../helpers/portal-world.js';

/**
 * Slow and idle clients cost bounded resources in direct mode (an outside review held a request
 * with an unfinished body open for 150 s+, and 1,500 idle connections). Short limits here; the
 * waits are bounds for "it was closed", not timings.
 */
describe('timeouts and connection caps in direct mode', async () => {
  const w = await makePortalWorld('sqlite', {
    KENSHIN_REQUEST_TIMEOUT_SECONDS: '3',
    KENSHIN_HEADERS_TIMEOUT_SECONDS: '2',
    KENSHIN_KEEPALIVE_TIMEOUT_SECONDS: '2',
    KENSHIN_IDLE_TIMEOUT_SECONDS: '4',
    KENSHIN_MAX_CONNECTIONS_PER_ADDRESS: '5',
  });
  const url = new URL(w.server.url);
  const cert = await w.cert(300);

  /** A TLS connection (with the certificate) from `localAddress`; resolves when the handshake is done. */
  const open = (localAddress = '127.0.0.1') =>
    new Promise<tls.TLSSocket>((resolve, reject) => {
      const tcp = net.connect({ host: url.hostname, port: Number(url.port), localAddress });
      tcp.once('error', reject);
      const s = tls.connect({ socket: tcp, ca: w.ca, pfx: Buffer.from(cert.file), passphrase: cert.password, servername: 'localhost' }, () => resolve(s));
      s.once('error', reject);
    });
  /** Resolves with what the server sent once it closes the connection, or 'still open' after `ms`. */
  const closedWithin = (s: tls.TLSSocket, ms: number) =>
    new Promise<string>((resolve) => {
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('error', () => {});
      const t = setTimeout(() => resolve('still open'), ms);
      s.once('close', () => {
        clearTimeout(t);
        resolve(got === '' ? 'closed' : got);
      });
    });
  const normalRequest = async () => (await w.client(cert).get('/')).status;

  test('a request whose body never arrives is closed (408), and others are served meanwhile', async () => {
    const s = await open();
    s.write(`POST /login HTTP/1.1\r\nHost: ${url.host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nloginId=ya`);
    const end = closedWithin(s, 15_000);
    assert.equal(await normalRequest(), 200);
    const outcome = await end;
    assert.notEqual(outcome, 'still open');
    assert.match(outcome, /^(closed|HTTP\/1\.1 408)/);
  });

  test('headers that never finish are cut off', async () => {
    const s = await open();
    s.write(`GET / HTTP/1.1\r\nHost: ${url.host}\r\nX-Slow: a`);
    assert.notEqual(await closedWithin(s, 15_000), 'still open');
  });

  test('an idle connection after the handshake is closed', async () => {
    const s = await open();
    assert.notEqual(await closedWithin(s, 15_000), 'still open');
  });

  test('an idle keep-alive connection between requests is closed', async () => {
    const s = await open();
    s.write(`GET /healthz HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
    const outcome = await closedWithin(s, 15_000);
    assert.match(outcome, /^HTTP\/1\.1 200/, 'answered first, then closed');
  });

  test('one address gets at most 5 connections; another address is still served', async () => {
    const held = await Promise.all([1, 2, 3, 4, 5].map(() => open('127.0.0.2')));
    const sixth = await open('127.0.0.2').then(
      (s) => closedWithin(s, 5_000),
      () => 'refused',
    );
    assert.notEqual(sixth, 'still open', 'the 6th connection from 127.0.0.2 is not kept');
    assert.equal(await normalRequest(), 200, '127.0.0.1 is still served');
    for (const s of held) s.destroy();
    await new Promise((r) => setTimeout(r, 200));
    const again = await open('127.0.0.2');
    again.write(`GET /healthz HTTP/1.1\r\nHost: ${url.host}\r\nConnection: close\r\n\r\n`);
    assert.match(await closedWithin(again, 10_000), /^HTTP\/1\.1 200/, 'slots are given back when connections close');
  });
});
