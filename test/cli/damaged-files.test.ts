import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { kenshin, kenshinProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

/**
 * A damaged file in the data directory, or a bad secret in the settings: one line that names the
 * file or setting and says what to do, exit code 2, nothing changed; `config check` finds the same
 * things `serve` would refuse.
 */
const dir = path.join(tempDir(), 'data');
const env = { KENSHIN_DATA_DIR: dir, KENSHIN_LOG_LEVEL: 'silent', KENSHIN_METRICS_LISTEN: 'off' };
assert.equal(kenshinProcess(['init', '--demo'], { env }).code, 0);
assert.equal(kenshinProcess(['tenant', 'add', '--code', 'T0001', '--name', 'x'], { env }).code, 0);

function listAll(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (p: string) => {
    for (const e of fs.readdirSync(p, { withFileTypes: true })) {
      const full = path.join(p, e.name);
      if (e.isDirectory()) walk(full);
      else out[path.relative(root, full)] = fs.readFileSync(full).toString('base64');
    }
  };
  walk(root);
  return out;
}

/** Replaces `file` with `content` for the body, then puts the original back. */
function damaged(file: string, content: string, body: () => void | Promise<void>): Promise<void> {
  const original = fs.readFileSync(file);
  fs.writeFileSync(file, content);
  return Promise.resolve(body()).finally(() => fs.writeFileSync(file, original));
}

function refused(args: string[], message: RegExp, extraEnv: Record<string, string> = {}): void {
  const before = listAll(dir);
  const r = kenshinProcess(args, { env: { ...env, ...extraEnv } });
  assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
  assert.match(r.stderr, message);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.equal(r.stdout, '');
  assert.deepEqual(listAll(dir), before);
}

for (const name of ['issuing.crt', 'root.crt']) {
  test(`a garbage ca/${name} is named, with what to do`, () =>
    damaged(path.join(dir, 'ca', name), 'not a certificate\n', () => {
      const message = new RegExp(`^kenshin: ${path.join(dir, 'ca', name).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not a PEM certificate \\(damaged\\?\\): restore it from a backup \\(kenshin restore, or the same file of a \`kenshin backup\` directory\\)`);
      refused(['cert', 'issue', '--tenant', 'T0001', '--out', path.join(path.dirname(dir), 'x.p12')], message);
      refused(['serve'], message);
    }));
}

test('a corrupt kenshin.sqlite is named, pointing to kenshin restore', () =>
  damaged(path.join(dir, 'kenshin.sqlite'), 'this is not a database, just forty-odd bytes of text\n'.repeat(200), async () => {
    const message = /^kenshin: .*kenshin\.sqlite is not a readable SQLite database \(file is not a database\): restore the data directory from a backup \(kenshin restore --from DIR, into an empty data directory\)/;
    refused(['cert', 'list'], message);
    refused(['serve'], message);
    const check = await kenshin(['config', 'check'], { env });
    assert.equal(check.code, 2);
    assert.match(check.stdout, /^error .*kenshin\.sqlite: .*is not a readable SQLite database/m);
  }));

test('config check refuses the package keys serve refuses: a 5-byte KENSHIN_PACKAGE_KEY, a garbage secrets/package-key', async () => {
  const short = Buffer.from('12345').toString('base64');
  const check = await kenshin(['config', 'check'], { env: { ...env, KENSHIN_PACKAGE_KEY: short } });
  assert.equal(check.code, 2, check.stdout);
  assert.match(check.stdout, /^error KENSHIN_PACKAGE_KEY: KENSHIN_PACKAGE_KEY: must be 32 bytes in base64/m);
  assert.doesNotMatch(check.stdout, /configuration OK/);
  refused(['serve'], /^kenshin: KENSHIN_PACKAGE_KEY: must be 32 bytes in base64/, { KENSHIN_PACKAGE_KEY: short });

  const keyFile = path.join(dir, 'secrets', 'package-key');
  // Generated at the first start (or the first issue); a fresh key of the right shape before that.
  if (!fs.existsSync(keyFile)) fs.writeFileSync(keyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o600 });
  await damaged(keyFile, 'garbage!\n', async () => {
    const c = await kenshin(['config', 'check'], { env });
    assert.equal(c.code, 2, c.stdout);
    assert.ok(c.stdout.includes(`${keyFile}: ${keyFile} does not hold a package key (base64 of 32 bytes)`), c.stdout);
    refused(['serve'], /^kenshin: .*package-key does not hold a package key \(base64 of 32 bytes\): restore it from a backup/);
  });
  const ok = await kenshin(['config', 'check'], { env });
  assert.match(ok.stdout, /^ok {4}package key: /m);
});
