import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { makePortalWorld } from '../helpers/portal-world.js';

/**
 * An outside review's attack on proxy mode: from an address that is not a trusted proxy, send a
 * request carrying a victim's public certificate in the header, then reset the connection (TCP
 * RST, SO_LINGER 0). socket.remoteAddress then reads undefined, which once meant "unix socket,
 * trusted", while the queued request was still parsed and served: a renewal in the victim's name.
 */
describe('proxy mode on TCP: a reset connection from an untrusted address is never a trusted proxy', async () => {
  // The portal world in proxy mode on TCP loopback, trusting 127.0.0.1 only.
  const w = await makePortalWorld('sqlite', { KENSHIN_MODE: 'proxy', KENSHIN_TRUSTED_PROXIES: '127.0.0.1' });
  const victim = await w.cert(60);
  const server = w.server;

  /** One request from 127.0.0.2 with the victim's certificate, reset by the client as soon as it is written. */
  const attack = () =>
    new Promise<void>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: server.port, localAddress: '127.0.0.2' }, () => {
        const body = '{}';
        s.write(
          `POST /api/v1/certificate/renewal HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n` +
            `X-SSL-Client-Cert: ${encodeURIComponent(victim.row.pem)}\r\n\r\n${body}`,
          () => {
            s.resetAndDestroy();
            resolve();
          },
        );
      });
      s.on('error', () => resolve());
    });

  test('100 reset requests create no renewal and no audit event in the victim\'s name', async () => {
    for (let i = 0; i < 100; i++) await attack();
    // Let the server finish whatever it parsed.
    await new Promise((r) => setTimeout(r, 500));
    const renewals = await w.runtime.database.db.selectFrom('renewals').selectAll().execute();
    assert.equal(renewals.length, 0, 'no renewal was forced');
    const byVictim = await w.runtime.database.db.selectFrom('audit_events').select('action').where('actor', '=', `cert:${victim.row.serial}`).execute();
    assert.deepEqual(byVictim, []);
    // The control: the very same request from the trusted proxy, not reset, is a renewal, so the
    // attack above reached the server and was refused, not lost on the way.
    const trusted = await new Promise<string>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: server.port }, () =>
        s.write(`POST /api/v1/certificate/renewal HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\nX-SSL-Client-Cert: ${encodeURIComponent(victim.row.pem)}\r\n\r\n{}`),
      );
      let out = '';
      s.on('data', (d: Buffer) => (out += d.toString()));
      s.on('end', () => resolve(out));
      s.on('error', reject);
    });
    assert.match(trusted, /^HTTP\/1\.1 201/);
  });
});
