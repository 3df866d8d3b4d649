import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { makeWorld } from '../helpers/world.js';
import { addTenant } from '../../src/tenancy/service.js';
import { issueCertificate } from '../../src/certificates/service.js';
import { startServer } from '../../src/web/server.js';
import { DAY_MS } from '../../src/clock.js';

/**
 * An outside review's attack on proxy mode: from an address that is not a trusted proxy, send a
 * request carrying a victim's public certificate in the header, then reset the connection (TCP
 * RST, SO_LINGER 0). socket.remoteAddress then reads undefined, which once meant "unix socket,
 * trusted", while the queued request was still parsed and served: a renewal in the victim's name.
 */
describe('proxy mode on TCP: a reset connection from an untrusted address is never a trusted proxy', async () => {
  const w = await makeWorld('sqlite', { env: { KENSHIN_MINT_WORKERS: '0', KENSHIN_MODE: 'proxy', KENSHIN_LISTEN: '127.0.0.1:0', KENSHIN_TRUSTED_PROXIES: '127.0.0.1' } });
  const deps = { db: w.runtime.database.db, clock: w.clock };
  await addTenant(deps, { code: 'T0001', name: '山田クリニック' }, 'test');
  const now = w.clock.now().getTime();
  const victim = await issueCertificate(await w.runtime.certificateDeps(), {
    tenantCode: 'T0001',
    keyType: 'p256',
    profile: 'compatible',
    validity: { kind: 'explicit', notBefore: new Date(now - 1000 * DAY_MS), notAfter: new Date(now + 60 * DAY_MS) },
    actor: 'test',
  });
  const server = await startServer(w.config, { clock: w.clock });
  w.onClose(() => server.close());

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
  });
});
