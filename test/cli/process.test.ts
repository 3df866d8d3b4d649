import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { kenshinProcess } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

// The real binary, as an operator runs it: a process, its exit code and its two streams.

test('the binary initialises a data directory and lists the demo certificate', () => {
  const dir = path.join(tempDir(), 'data');
  const init = kenshinProcess(['--data-dir', dir, 'init', '--demo']);
  assert.equal(init.code, 0, init.stderr);
  assert.match(init.stdout, /login: +demo \/ \S+/);
  const list = kenshinProcess(['cert', 'list'], { env: { KENSHIN_DATA_DIR: dir } });
  assert.equal(list.code, 0, list.stderr);
  assert.match(list.stdout, /DEMO\s+active\s+\d{4}-\d\d-\d\d\s+60/);

  // A damaged issuing key: one clear line, exit 2, nothing issued.
  const key = path.join(dir, 'ca', 'issuing.key');
  fs.writeFileSync(key, fs.readFileSync(key, 'utf8').replace(/[A-Za-z0-9+/]{20}\n/, 'AAAAAAAAAAAAAAAAAAAA\n'));
  const issue = kenshinProcess(['--data-dir', dir, 'cert', 'issue', '--tenant', 'DEMO', '--out', path.join(dir, 'x.p12')]);
  assert.equal(issue.code, 2);
  assert.match(issue.stderr, /^kenshin: cannot decrypt .*issuing\.key: wrong passphrase .*or damaged key file\n$/);
  assert.ok(!fs.existsSync(path.join(dir, 'x.p12')));
});

test('a data directory the operator cannot write to is refused before anything is created', () => {
  const parent = tempDir();
  fs.chmodSync(parent, 0o555);
  const dir = path.join(parent, 'data');
  // As root, the CLI runs without the capability that ignores permission bits (see kenshinProcess).
  const r = kenshinProcess(['--data-dir', dir, 'init', '--demo'], { obeyPermissions: true });
  fs.chmodSync(parent, 0o755);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^kenshin: data directory .*\/data is not writable \(EACCES\)\n$/);
  assert.deepEqual(fs.readdirSync(parent), []);
});

test('usage errors and --help', () => {
  const help = kenshinProcess(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /cert/);
  const bad = kenshinProcess(['cert', 'frobnicate']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown command 'frobnicate'/);
});
