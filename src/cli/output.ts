/**
 * Every command prints either human-readable lines or, with --json, one JSON document on stdout.
 * Errors go to stderr (see errors.ts), so `--json` output can always be piped into jq.
 */
export interface Out {
  json: boolean;
  result(data: unknown, human: () => string): void;
}

export function makeOut(json: boolean, write: (s: string) => void = (s) => process.stdout.write(s)): Out {
  return {
    json,
    result(data, human) {
      write(json ? JSON.stringify(data, null, 2) + '\n' : human() + '\n');
    },
  };
}

/** Fixed-width table for lists. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ''))));
  const line = (cells: string[]) => cells.map((c, i) => c + ' '.repeat(widths[i]! - width(c))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** Display width: CJK characters take two columns in a terminal. */
function width(s: string): number {
  let w = 0;
  for (const ch of s) w += /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]/.test(ch) ? 2 : 1;
  return w;
}
