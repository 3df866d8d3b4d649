import fs from 'node:fs';
import path from 'node:path';
import { openDatabase } from '../../src/db/database.js';

const TABLES = ['tenants', 'institutions', 'users', 'user_institutions', 'certificates', 'audit_events', 'audit_head', 'renewals', 'sessions', 'login_throttle', 'crls', 'reminders', 'deliveries'] as const;

/** Every row of every table plus every file in the data dir (name and bytes): "exactly as before". */
export async function snapshotInstallation(dataDir: string, databaseUrl: string | undefined): Promise<unknown> {
  const database = openDatabase({ url: databaseUrl, sqliteFile: path.join(dataDir, 'kenshin.sqlite') });
  const rows: Record<string, unknown[]> = {};
  try {
    for (const t of TABLES) rows[t] = await database.db.selectFrom(t).selectAll().execute();
  } finally {
    await database.close();
  }
  const files: Record<string, string> = {};
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      // The SQLite file's bytes change with WAL checkpoints; its rows are compared above.
      if (/kenshin\.sqlite/.test(e.name)) continue;
      if (e.isDirectory()) walk(p);
      else files[path.relative(dataDir, p)] = fs.readFileSync(p).toString('base64');
    }
  };
  walk(dataDir);
  return { rows, files };
}
