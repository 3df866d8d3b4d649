import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { kenshin, kenshinProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { spawnInstance, waitReady } from '../helpers/instances.js';

/**
 * The data directory holds password hashes, session and CSRF tokens, the audit log, the CA keys and
 * their passphrase: nobody but the service account may read any of it, whatever the umask of the
 * shell that started Kenshin (`npm start`, a manual `kenshin init`, systemd's 0022 default).
 */

/** Every path under `root` (itself included) whose mode lets group or others in, as "rel mode". */
function looseModes(root: string): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    const st = fs.lstatSync(p);
    if ((st.mode & 0o077) !== 0) out.push(`${path.relative(root, p) || '.'} ${(st.mode & 0o777).toString(8)}`);
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) walk(path.join(p, e));
  };
  walk(root);
  return out;
}

function listAll(root: string): string[] {
  const out: string[] = [];
  const walk = (p: string) => {
    for (const e of fs.readdirSync(p, { withFileTypes: true })) {
      out.push(path.relative(root, path.join(p, e.name)));
      if (e.isDirectory()) walk(path.join(p, e.name));
    }
  };
  walk(root);
  return out.sort();
}

const env = (dir: string) => ({ KENSHIN_DATA_DIR: dir, KENSHIN_LOG_LEVEL: 'silent', KENSHIN_METRICS_LISTEN: 'off' });

test('under umask 022 the binary keeps the data directory 0700 and every file 0600, the live -wal and -shm included', async () => {
  const dir = path.join(tempDir(), 'data');
  const init = kenshinProcess(['--data-dir', dir, 'init', '--demo'], { umask: '022' });
  assert.equal(init.code, 0, init.stderr);
  assert.deepEqual(looseModes(dir), []);

  const server = await spawnInstance('serve', ['serve'], env(dir), { umask: '022' });
  await waitReady(server, dir);
  // A write while the server holds the database open: the WAL and its index exist now.
  const issue = kenshinProcess(['--data-dir', dir, 'cert', 'issue', '--tenant', 'DEMO', '--key', 'p256', '--out', path.join(dir, 'demo', 'second.p12')], { umask: '022' });
  assert.equal(issue.code, 0, issue.stderr);
  const files = listAll(dir);
  for (const f of ['kenshin.sqlite', 'kenshin.sqlite-wal', 'kenshin.sqlite-shm', 'ca/root.crt', 'ca/issuing.key', 'secrets/ca-passphrase', 'secrets/package-key', 'server/server.key', 'server/server.crt', 'demo/demo.p12', 'demo/second.p12']) {
    assert.ok(files.includes(f), `${f} in ${files.join(', ')}`);
  }
  assert.deepEqual(looseModes(dir), []);
  assert.equal(await server.stop(), 0, server.stderr);

  const backup = path.join(path.dirname(dir), 'backup');
  const b = kenshinProcess(['--data-dir', dir, 'backup', '--out', backup], { umask: '022' });
  assert.equal(b.code, 0, b.stderr);
  assert.deepEqual(looseModes(backup), []);
});

test('in-process too (the test runner’s umask is 022): init --demo and a backup create nothing others can read', async () => {
  const dir = path.join(tempDir(), 'data');
  const previous = process.umask(0o022);
  try {
    assert.equal((await kenshin(['--data-dir', dir, 'init', '--demo'])).code, 0);
    assert.deepEqual(looseModes(dir), []);
    const backup = path.join(path.dirname(dir), 'backup');
    const b = await kenshin(['--data-dir', dir, 'backup', '--out', backup]);
    assert.equal(b.code, 0, b.stderr);
    assert.deepEqual(looseModes(backup), []);
  } finally {
    process.umask(previous);
  }
});

test('serve and config check refuse a data directory, database or key that others can read, naming it and the fix', async () => {
  const dir = path.join(tempDir(), 'data');
  assert.equal(kenshinProcess(['--data-dir', dir, 'init']).code, 0);
  const cases: [string, number][] = [
    [path.join(dir, 'kenshin.sqlite'), 0o644],
    [dir, 0o755],
    [path.join(dir, 'secrets', 'ca-passphrase'), 0o640],
    [path.join(dir, 'ca', 'issuing.key'), 0o604],
  ];
  for (const [target, mode] of cases) {
    const original = fs.statSync(target).mode & 0o777;
    fs.chmodSync(target, mode);
    const before = listAll(dir);
    const serve = kenshinProcess(['serve'], { env: env(dir) });
    assert.equal(serve.code, 2, `${target}: ${serve.stderr}`);
    assert.equal(serve.stderr.trim().split('\n').length, 1, serve.stderr);
    assert.ok(serve.stderr.includes(`${target} is readable by others (mode ${mode.toString(8)})`), serve.stderr);
    assert.match(serve.stderr, /chmod -R go-rwx /);
    assert.equal(serve.stdout, '');
    // Refused, not "fixed": the operator learns that the secrets were exposed.
    assert.equal(fs.statSync(target).mode & 0o777, mode);
    assert.deepEqual(listAll(dir), before);
    const check = await kenshin(['config', 'check'], { env: env(dir) });
    assert.equal(check.code, 2, check.stdout);
    assert.ok(check.stdout.includes(`${target} is readable by others`), check.stdout);
    fs.chmodSync(target, original);
  }
  const ok = await kenshin(['config', 'check'], { env: env(dir) });
  assert.doesNotMatch(ok.stdout, /readable by others/);
});
