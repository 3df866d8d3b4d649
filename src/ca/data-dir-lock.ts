import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Refusal } from '../errors.js';

/**
 * One writer at a time for the shared files of a data directory (the CA and demo at init, the
 * server certificate). Several `kenshin serve` processes may share one data directory: without
 * this, two first starts both create a CA and the loser fails on the rename, or one CA ends up
 * encrypted under the other's passphrase file. The first process takes the lock; the others wait
 * for it and then find its result.
 *
 * The lock is a file created exclusively, holding "pid host nonce". A lock whose process is gone
 * from this host is taken over, so a crash mid-init does not block the next start. One from
 * another host is never taken over (its pid means nothing here); after `waitMs` the refusal names
 * the file to remove.
 */
export const LOCK_FILE = '.kenshin.lock';

/** Locks this async call chain already holds: initialise → ensureServerCertificate must not wait for itself. */
const held = new AsyncLocalStorage<ReadonlySet<string>>();

export async function withDataDirLock<T>(dataDir: string, fn: () => Promise<T>, opts: { waitMs?: number } = {}): Promise<T> {
  const file = path.join(dataDir, LOCK_FILE);
  if (held.getStore()?.has(file)) return fn();
  const mine = `${process.pid} ${os.hostname()} ${randomBytes(8).toString('hex')}\n`;
  const deadline = Date.now() + (opts.waitMs ?? 120_000);
  while (!tryCreate(file, mine)) {
    const holder = readHolder(file);
    if (holder && holder.host === os.hostname() && !isAlive(holder.pid)) {
      takeOver(file, holder.raw);
      continue;
    }
    if (Date.now() > deadline) {
      const who = holder ? `process ${holder.pid} on ${holder.host}` : 'another process';
      throw new Refusal('data_dir_locked', `${file} is held by ${who}; if no kenshin process is setting up this data directory, remove that file`, { field: file });
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  try {
    return await held.run(new Set([...(held.getStore() ?? []), file]), fn);
  } finally {
    // Only our own lock: never remove one another process took over meanwhile.
    if (readRaw(file) === mine) fs.rmSync(file, { force: true });
  }
}

function tryCreate(file: string, content: string): boolean {
  try {
    fs.writeFileSync(file, content, { mode: 0o600, flag: 'wx' });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

function readRaw(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Undefined while the file is gone or still being written (then it is simply held). */
function readHolder(file: string): { pid: number; host: string; raw: string } | undefined {
  const raw = readRaw(file);
  const m = raw && /^(\d+) (\S+) [0-9a-f]+\n$/.exec(raw);
  return m ? { pid: Number(m[1]), host: m[2]!, raw } : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/**
 * Moves the dead holder's lock aside (atomically), then checks that what was moved is the lock
 * judged dead: if another waiter replaced it in between with its own live lock, that one is put back.
 */
function takeOver(file: string, staleRaw: string): void {
  const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  try {
    fs.renameSync(file, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (readRaw(aside) === staleRaw) fs.rmSync(aside, { force: true });
  else fs.renameSync(aside, file);
}
