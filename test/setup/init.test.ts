import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { initialiseIfNeeded } from '../../src/setup/init.js';
import { loadConfig, dataPaths } from '../../src/config.js';
import { loadIssuingAuthority } from '../../src/ca/hierarchy.js';
import { openRuntime } from '../../src/runtime.js';
import { kenshin } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

// Several instances sharing one data directory may all start with `serve --init` at once.

test('two initialisations at once: one creates the CA and demo, the other finds it done and reuses it', async () => {
  const dir = path.join(tempDir(), 'data');
  const config = loadConfig({ dataDir: dir }, { KENSHIN_LOG_LEVEL: 'silent' });
  const results = await Promise.all([initialiseIfNeeded(config, { demo: true }), initialiseIfNeeded(config, { demo: true })]);
  assert.equal(results.filter((r) => r !== undefined).length, 1);
  // The one CA opens with the one generated passphrase file (not another process's).
  const paths = dataPaths(dir);
  const authority = await loadIssuingAuthority(paths, undefined, undefined);
  assert.match(authority.issuing.subject, /Kenshin Cloud Issuing CA 1/);
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no lock or temporary CA left behind');
  const rt = await openRuntime(config);
  try {
    assert.deepEqual((await rt.database.db.selectFrom('tenants').select('code').execute()).map((t) => t.code), ['DEMO']);
  } finally {
    await rt.close();
  }
  // A later `serve --init` leaves an initialised directory alone.
  assert.equal(await initialiseIfNeeded(config, { demo: true }), undefined);
});

test('two `kenshin init` at once: one initialises, the other refuses with one clear line', async () => {
  const dir = path.join(tempDir(), 'data');
  const runs = await Promise.all([kenshin(['--data-dir', dir, 'init']), kenshin(['--data-dir', dir, 'init'])]);
  assert.deepEqual(runs.map((r) => r.code).sort(), [0, 2]);
  const refused = runs.find((r) => r.code === 2)!;
  assert.equal(refused.stderr, `kenshin: ${dir} is already initialised (CA at ${path.join(dir, 'ca', 'root.crt')}); refusing to overwrite it\n`);
});
