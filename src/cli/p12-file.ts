import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Refusal } from '../errors.js';

/**
 * The .p12 a command writes for the operator (`cert issue`, `cert recover`). It is written whole
 * into a temp file beside the target before the certificate is registered (a full disk refuses
 * with nothing registered), and linked into place after the commit. The temp file is removed on
 * error and on SIGINT/SIGTERM/SIGHUP; one left by a process that was killed (kill -9, a power cut)
 * is removed by the next command writing into that directory.
 */
export interface PendingP12 {
  target: string;
  tmp: string;
  /** Writes and flushes the finished file (0600) into the temp file. */
  write(data: Uint8Array): void;
  /** Moves it into place, never over a file that appeared meanwhile. */
  publish(): void;
  abandon(): void;
}

/** `.NAME.kenshin-PID.tmp`: named so that only our own leftovers are ever removed. */
const TEMP = /^\..+\.kenshin-(\d+)\.tmp$/;

function tempName(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.kenshin-${process.pid}.tmp`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, as another user's process.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes our temp files in `dir` whose process is gone. A live one (a run in progress) is left alone. */
export function removeStaleTemps(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = Number(TEMP.exec(name)?.[1]);
    if (!pid || pid === process.pid || processAlive(pid)) continue;
    fs.rmSync(path.join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * Claims the output path before anything is issued, so an existing or unwritable path is refused
 * with the database untouched.
 */
export function claimP12Output(file: string, field = 'out'): PendingP12 {
  const target = path.resolve(file);
  if (fs.existsSync(target)) throw new Refusal('output_not_writable', `${target} already exists; refusing to overwrite a certificate file`, { field });
  removeStaleTemps(path.dirname(target));
  const tmp = tempName(target);
  try {
    fs.writeFileSync(tmp, '', { mode: 0o600, flag: 'wx' });
  } catch (e) {
    throw new Refusal('output_not_writable', `cannot write ${target} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { field });
  }
  return {
    target,
    tmp,
    write(data) {
      const fd = fs.openSync(tmp, 'w', 0o600);
      try {
        fs.writeFileSync(fd, data);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    },
    publish() {
      // link, not rename: rename would silently replace a file someone created after the claim.
      fs.linkSync(tmp, target);
      fs.rmSync(tmp, { force: true });
      try {
        const dirFd = fs.openSync(path.dirname(target), 'r');
        fs.fsyncSync(dirFd);
        fs.closeSync(dirFd);
      } catch {
        // Not every file system lets a directory be flushed; the link is there either way.
      }
    },
    abandon() {
      fs.rmSync(tmp, { force: true });
    },
  };
}

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * While a certificate file is being produced, a signal removes the temp file and says what state
 * was reached (`message`), then exits as the signal would. Returns the function that stops it.
 */
export function onInterrupt(cleanup: () => void): () => void {
  let interrupted = false;
  const handlers = SIGNALS.map((sig) => {
    // `on`, not `once`: with no listener left Node restores the default action, and a second
    // Ctrl-C arriving during the cleanup would kill the process before the temp file is removed.
    const handler = () => {
      if (interrupted) return;
      interrupted = true;
      cleanup();
      process.exit(128 + (os.constants.signals[sig] ?? 0));
    };
    process.on(sig, handler);
    return [sig, handler] as const;
  });
  return () => {
    for (const [sig, handler] of handlers) process.off(sig, handler);
  };
}
