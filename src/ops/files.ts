import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * File handling shared by backup and restore. Both build their result in a temporary directory
 * and rename it into place, so everything written is flushed to disk first: after a power cut,
 * the renamed directory must not turn out to hold empty or partial files.
 */

/**
 * Every file of a backup is 0600 in a 0700 directory, as in the data directory (private-files.ts):
 * certificates are public, but one rule for all is one rule to check, and the restored data
 * directory must pass `serve`'s check.
 */
export const SECRET_MODE = 0o600;
export const DIR_MODE = 0o700;

/** Whether the manifest marks a file as a secret (certificates are not); its mode is 0600 either way. */
export function isPublicFile(relPath: string): boolean {
  return relPath.endsWith('.crt');
}

export function fsyncPath(p: string): void {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Copies one file to a new path (never over an existing one), sets its mode and flushes it. */
export function copyFileDurably(from: string, to: string, mode: number): void {
  fs.mkdirSync(path.dirname(to), { recursive: true, mode: DIR_MODE });
  fs.copyFileSync(from, to, fs.constants.COPYFILE_EXCL);
  fs.chmodSync(to, mode);
  fsyncPath(to);
}

/** Streams the file, so a database of several gigabytes is hashed in constant memory. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Regular files under `dir`, as paths relative to `base` with forward slashes, sorted. Leftovers
 * of an interrupted write (`*.tmp`) are not part of the installation and are skipped.
 */
export function listFiles(base: string, dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listFiles(base, full));
    else if (entry.isFile() && !entry.name.endsWith('.tmp')) out.push(path.relative(base, full).split(path.sep).join('/'));
  }
  return out.sort();
}

/** Flushes `root` and every directory under it, so their new entries survive a crash. */
export function fsyncTree(root: string): void {
  for (const entry of fs.readdirSync(root, { withFileTypes: true })) {
    if (entry.isDirectory()) fsyncTree(path.join(root, entry.name));
  }
  fsyncPath(root);
}

/** For the command lines we print: safe to paste into a POSIX shell. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
