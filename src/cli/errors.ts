import { isRefusal } from '../errors.js';

/** Exit codes: 0 ok, 2 refused (bad input, state that forbids the action), 1 unexpected failure. */
export const EXIT_REFUSED = 2;
export const EXIT_FAILED = 1;

/** One line on stderr for a refusal; never a stack trace. Unexpected errors get one line too, plus a hint. */
export function reportError(e: unknown, json: boolean, writeErr: (s: string) => void): number {
  if (isRefusal(e)) {
    writeErr(json ? JSON.stringify({ error: e.code, field: e.field ?? null, message: e.message }) + '\n' : `kenshin: ${e.message}\n`);
    return EXIT_REFUSED;
  }
  const msg = e instanceof Error ? e.message : String(e);
  writeErr(json ? JSON.stringify({ error: 'internal_error', message: msg }) + '\n' : `kenshin: unexpected error: ${msg}\n(set KENSHIN_DEBUG=1 for details)\n`);
  if (process.env.KENSHIN_DEBUG && e instanceof Error && e.stack) writeErr(e.stack + '\n');
  return EXIT_FAILED;
}
