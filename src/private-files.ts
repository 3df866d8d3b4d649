import fs from 'node:fs';
import path from 'node:path';
import { Refusal } from './errors.js';

/**
 * The data directory holds password hashes, session and CSRF tokens, the audit log, the CA keys and
 * their passphrase, the renewal packages' key: nobody but the service account may read any of it.
 * The modes are set explicitly rather than left to the umask, because the umask is whatever the
 * shell that started Kenshin had (0022 for `npm start` and a manual `kenshin init`, 0007 in our
 * systemd unit before): a umask only ever takes bits away, so 0700/0600 asked for is 0700/0600 got,
 * while a file created without a mode (0666 minus the umask) was world-readable.
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/**
 * `mkdir -p DIR` with every directory it creates 0700, and DIR itself made 0700 when it is empty
 * (nothing in it can have been exposed yet: an operator's `mkdir data` before `kenshin init`).
 * A directory that already holds something keeps its mode: `assertPrivate` reports it instead.
 */
export function ensurePrivateDir(dir: string): void {
  const first = fs.mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (first !== undefined) {
    // mkdir's mode is subject to the umask only in taking bits away, but be exact anyway.
    for (let d = dir; ; d = path.dirname(d)) {
      fs.chmodSync(d, PRIVATE_DIR_MODE);
      if (d === first || path.dirname(d) === d) break;
    }
  } else if (fs.readdirSync(dir).length === 0) {
    fs.chmodSync(dir, PRIVATE_DIR_MODE);
  }
}

/**
 * Creates an empty file with mode 0600 unless it exists: SQLite then creates its -wal and -shm with
 * the database file's mode (its unix VFS copies it), so they are private from their first byte.
 */
export function ensurePrivateFile(file: string): void {
  let fd: number;
  try {
    fd = fs.openSync(file, 'wx', PRIVATE_FILE_MODE);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw e;
  }
  try {
    fs.fchmodSync(fd, PRIVATE_FILE_MODE);
  } finally {
    fs.closeSync(fd);
  }
}

export interface LooseEntry {
  path: string;
  mode: number;
}

/**
 * Directories and regular files under `root` (itself first) that group or others may read, write or
 * enter. Symbolic links (always 0777) and sockets (the proxy-mode socket is 0660 for nginx, on
 * purpose) are not data and are not looked at; nor is anything a symbolic link points to.
 */
export function looseEntries(root: string): LooseEntry[] {
  const out: LooseEntry[] = [];
  const walk = (p: string) => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      return; // gone between readdir and lstat (a temp file of another process)
    }
    if (!st.isDirectory() && !st.isFile()) return;
    if ((st.mode & 0o077) !== 0) out.push({ path: p, mode: st.mode & 0o777 });
    if (st.isDirectory()) for (const e of fs.readdirSync(p).sort()) walk(path.join(p, e));
  };
  if (fs.existsSync(root)) walk(root);
  return out;
}

/** The refusal for an exposed entry: which one, its mode, and the command that fixes the whole directory. */
export function exposedRefusal(root: string, e: LooseEntry, more: number): Refusal {
  const others = more > 0 ? ` (and ${more} more)` : '';
  return new Refusal(
    'data_dir_exposed',
    `${e.path} is readable by others (mode ${e.mode.toString(8)})${others}: its secrets may have been read; run \`chmod -R go-rwx ${root}\` and start again`,
    { field: e.path },
  );
}

/**
 * Refuses to serve from a data directory others can read. Refused rather than fixed silently: a
 * world-readable database or key may already have been copied, and the operator has to know (and
 * perhaps rotate the CA passphrase or the package key); `chmod` is one command away.
 */
export function assertPrivate(root: string): void {
  const loose = looseEntries(root);
  if (loose.length) throw exposedRefusal(root, loose[0]!, loose.length - 1);
}
