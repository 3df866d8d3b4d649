import fs from 'node:fs';
import path from 'node:path';

/**
 * Writes a file so that a reader (nginx reloading, a crash, a second process) sees the old
 * content or the new one, never half of it: a temp file in the same directory, flushed to disk,
 * then renamed over the target. `mode` applies from the first byte, so a key is never readable
 * by others even for a moment, and exactly: a public bundle for nginx is 0644 even when the
 * process runs with umask 077 (bin/kenshin.js).
 */
export function writeFileAtomic(file: string, content: string | Uint8Array, mode: number): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  const fd = fs.openSync(tmp, 'wx', mode);
  try {
    fs.fchmodSync(fd, mode);
    fs.writeFileSync(fd, content);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}
