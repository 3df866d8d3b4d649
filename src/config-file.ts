import fs from 'node:fs';
import { invalidInput } from './errors.js';

/**
 * The config file: `KEY=value` lines, `#` comments, values optionally in single or double quotes.
 * The same format as a systemd EnvironmentFile, so one file serves `kenshin` and the unit alike,
 * and every key is the environment variable of the same name.
 */
export interface ConfigFileValues {
  values: Record<string, string>;
  /** Line number of each key, for messages. */
  lines: Record<string, number>;
}

function closest(name: string, known: readonly string[]): string | undefined {
  // Levenshtein distance; a suggestion only when it is plausibly a typo.
  const dist = (a: string, b: string) => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0]![j] = j;
    for (let i = 1; i <= a.length; i++) {
      for (let j = 1; j <= b.length; j++) d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    return d[a.length]![b.length]!;
  };
  let best: { k: string; d: number } | undefined;
  for (const k of known) {
    const d = dist(name, k);
    if (!best || d < best.d) best = { k, d };
  }
  return best && best.d <= 3 ? best.k : undefined;
}

export function parseConfigText(text: string, file: string, known: readonly string[]): ConfigFileValues {
  const values: Record<string, string> = {};
  const lines: Record<string, number> = {};
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    const at = `${file} line ${i + 1}`;
    if (line === '' || line.startsWith('#')) return;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw invalidInput(at, `expected KEY=value, got "${line.slice(0, 60)}"`);
    const key = m[1]!;
    let value = m[2]!;
    if (!known.includes(key)) {
      const hint = closest(key, known);
      throw invalidInput(key, `unknown setting in ${at}${hint ? ` (did you mean ${hint}?)` : ''}`);
    }
    if (key in values) throw invalidInput(key, `set twice in ${file} (lines ${lines[key]} and ${i + 1})`);
    const quoted = /^(["'])(.*)\1$/.exec(value);
    if (quoted) value = quoted[2]!;
    else if (/^["']/.test(value)) throw invalidInput(key, `unterminated quote in ${at}`);
    values[key] = value;
    lines[key] = i + 1;
  });
  return { values, lines };
}

export function readConfigFile(file: string, known: readonly string[]): ConfigFileValues {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw invalidInput('KENSHIN_CONFIG', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return parseConfigText(text, file, known);
}
