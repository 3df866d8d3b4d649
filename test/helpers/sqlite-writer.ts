/**
 * A second process writing to an installation, for the online-backup test: it issues certificates
 * for T0001 (revoking every third) until its stdin closes, and prints "committed N" after each
 * committed change. Run: node --import tsx test/helpers/sqlite-writer.ts (KENSHIN_DATA_DIR and
 * KENSHIN_CA_PASSPHRASE in the environment).
 */
import { loadConfig } from '../../src/config.js';
import { openRuntime } from '../../src/runtime.js';
import { issueCertificate, revokeCertificate } from '../../src/certificates/service.js';

const rt = await openRuntime(loadConfig());
const deps = await rt.certificateDeps();
let stop = false;
process.stdin.on('end', () => (stop = true));
process.stdin.resume();
let n = 0;
while (!stop) {
  const r = await issueCertificate(deps, { tenantCode: 'T0001', keyType: 'p256', profile: 'compatible', validity: { kind: 'default' }, actor: 'writer' });
  process.stdout.write(`committed ${++n}\n`);
  if (n % 3 === 0) {
    await revokeCertificate(deps, { serial: r.serial, reason: 'superseded', actor: 'writer' });
    process.stdout.write(`committed ${++n}\n`);
  }
}
await rt.close();
