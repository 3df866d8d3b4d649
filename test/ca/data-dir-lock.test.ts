import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { withDataDirLock, LOCK_FILE } from '../../src/ca/data-dir-lock.js';
import { Refusal } from '../../src/errors.js';
import { tempDir } from '../helpers/tmp.js';

test('one holder at a time: a second caller waits until the first is done, then the lock file is gone', async () => {
  const dir = tempDir();
  const events: string[] = [];
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const first = withDataDirLock(dir, async () => {
    events.push('first in');
    await gate;
    events.push('first out');
  });
  const second = withDataDirLock(dir, async () => void events.push('second in'));
  // Without the lock the second body would already have run (it starts synchronously).
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(events, ['first in']);
  assert.match(fs.readFileSync(path.join(dir, LOCK_FILE), 'utf8'), new RegExp(`^${process.pid} ${os.hostname()} [0-9a-f]+\\n$`));
  open();
  await Promise.all([first, second]);
  assert.deepEqual(events, ['first in', 'first out', 'second in']);
  assert.ok(!fs.existsSync(path.join(dir, LOCK_FILE)));
});

test('the holder may take it again further down its own call chain (init issues the server certificate)', async () => {
  const dir = tempDir();
  const r = await withDataDirLock(dir, () => withDataDirLock(dir, async () => 'inner'));
  assert.equal(r, 'inner');
});

test('a lock left by a process that is gone from this host is taken over', async () => {
  const dir = tempDir();
  const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
  fs.writeFileSync(path.join(dir, LOCK_FILE), `${dead} ${os.hostname()} 00ff\n`);
  assert.equal(await withDataDirLock(dir, async () => 'ran', { waitMs: 10_000 }), 'ran');
  assert.deepEqual(fs.readdirSync(dir), []);
});

test('a lock held on another host is never taken over: a clear refusal naming the file', async () => {
  const dir = tempDir();
  const file = path.join(dir, LOCK_FILE);
  fs.writeFileSync(file, `${process.pid} other-host.example 00ff\n`);
  await assert.rejects(
    withDataDirLock(dir, async () => 'ran', { waitMs: 200 }),
    (e: unknown) => e instanceof Refusal && e.code === 'data_dir_locked' && e.message === `${file} is held by process ${process.pid} on other-host.example; if no kenshin process is setting up this data directory, remove that file`,
  );
  assert.ok(fs.existsSync(file), 'left in place');
});
