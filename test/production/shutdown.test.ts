import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { testDialects, freshDatabaseUrl } from '../helpers/databases.js';
import { kenshin, BIN } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { freePort } from '../helpers/nginx.js';
import { TlsClient } from '../helpers/client.js';
import { openDatabase } from '../../src/db/database.js';
import { verifyAuditChain } from '../../src/audit/verify.js';
import { childEnv } from '../helpers/child-env.js';

/**
 * Stopping `kenshin serve` in the middle of renewals. SIGTERM: requests in flight finish, then the
 * process exits 0. SIGKILL (a crash): whatever was cut leaves nothing half-done. Either way every
 * issued successor has its package, and a retry afterwards gets exactly one successor per certificate.
 */
const RENEWALS = 10;

interface Installation {
  env: Record<string, string | undefined>;
  dataDir: string;
  certs: { file: Uint8Array; password: string }[];
  port: number;
}

async function install(dialect: 'sqlite' | 'postgres'): Promise<Installation> {
  const dataDir = tempDir();
  const db = await freshDatabaseUrl(dialect);
  const port = await freePort();
  const env = {
    KENSHIN_DATA_DIR: dataDir,
    KENSHIN_DATABASE_URL: db.url,
    KENSHIN_CA_PASSPHRASE: 'shutdown-test',
    KENSHIN_LISTEN: `127.0.0.1:${port}`,
    KENSHIN_METRICS_LISTEN: 'off',
    KENSHIN_LOG_LEVEL: 'silent',
    KENSHIN_MINT_WORKERS: '2',
  };
  assert.equal((await kenshin(['init'], { env })).code, 0);
  assert.equal((await kenshin(['tenant', 'add', '--code', 'T0001', '--name', '山田クリニック'], { env })).code, 0);
  const certs = [];
  for (let i = 0; i < RENEWALS; i++) {
    const out = path.join(dataDir, `c${i}.p12`);
    // RSA: minting takes long enough that SIGTERM lands while renewals are being minted.
    const r = await kenshin(['cert', 'issue', '--tenant', 'T0001', '--key', 'rsa2048', '--valid-days', '30', '--out', out, '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    certs.push({ file: new Uint8Array(fs.readFileSync(out)), password: r.json<{ password: string }>().password });
  }
  return { env, dataDir, certs, port };
}

function serve(inst: Installation): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, 'serve'], { env: childEnv({ ...inst.env }), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/**
 * Until /readyz answers 200. Start-up (tsx, the CA, two mint workers) takes a few seconds and far
 * longer on a loaded box, so the wait is a deadline, and a serve that exits meanwhile (its port
 * taken) fails at once with what it said instead of being mistaken for another one that answers.
 */
async function ready(inst: Installation, ca: string, s: ReturnType<typeof serve>): Promise<void> {
  let exited = false;
  void s.exited.then(() => (exited = true));
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`serve exited before it was ready: ${s.output()}`);
    try {
      if ((await new TlsClient(`https://127.0.0.1:${inst.port}/`, ca).get('/readyz')).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`serve did not become ready in 60 s: ${s.output()}`);
}

type Outcome = { status: number; at: number } | { error: string; at: number };

function renewAll(inst: Installation, ca: string): Promise<Outcome>[] {
  return inst.certs.map((c) =>
    new TlsClient(`https://127.0.0.1:${inst.port}/`, ca, c).request('POST', '/api/v1/certificate/renewal', { json: {} }).then(
      (r) => ({ status: r.status, at: Date.now() }),
      (e: Error) => ({ error: e.message, at: Date.now() }),
    ),
  );
}

/** Every successor certificate has its renewal row and sealed package; every renewal row its certificate. */
async function assertConsistent(inst: Installation): Promise<{ successors: number }> {
  const database = openDatabase({ url: inst.env.KENSHIN_DATABASE_URL, sqliteFile: path.join(inst.dataDir, 'kenshin.sqlite') });
  try {
    const db = database.db;
    const successors = await db.selectFrom('certificates').select(['id', 'predecessor_id']).where('issued_via', '=', 'renewal').execute();
    const renewals = await db.selectFrom('renewals').selectAll().execute();
    assert.equal(renewals.length, successors.length, 'one renewal row per successor certificate');
    for (const s of successors) {
      const r = renewals.find((x) => x.successor_id === s.id);
      assert.ok(r, `successor ${s.id} has its renewal`);
      assert.ok(r.package_sealed && r.package_sealed.length > 0, `successor ${s.id} has its package`);
      assert.equal(r.predecessor_id, s.predecessor_id);
    }
    assert.equal(new Set(successors.map((s) => s.predecessor_id)).size, successors.length, 'at most one successor per certificate');
    const chain = await verifyAuditChain(db);
    assert.equal(chain.ok, true, JSON.stringify(chain));
    return { successors: successors.length };
  } finally {
    await database.close();
  }
}

for (const dialect of testDialects()) {
  describe(`stopping serve during renewals on ${dialect}`, async () => {
    const inst = await install(dialect);
    const ca = fs.readFileSync(path.join(inst.dataDir, 'ca', 'root.crt'), 'utf8');

    test('SIGTERM: the renewals in flight finish, then the process exits 0', async (t) => {
      const s = serve(inst);
      // A test that fails half-way must not leave its serve on the port for the next one.
      t.after(() => void s.child.kill('SIGKILL'));
      await ready(inst, ca, s);
      const pending = renewAll(inst, ca);
      // Let the requests reach the server and the workers start minting, then ask it to stop.
      await new Promise((r) => setTimeout(r, 150));
      const termAt = Date.now();
      s.child.kill('SIGTERM');
      const outcomes = await Promise.all(pending);
      assert.equal(await s.exited, 0, s.output());
      assert.match(s.output(), /shutting down: finishing requests in flight/);
      const ok = outcomes.filter((o): o is { status: number; at: number } => 'status' in o && o.status === 201);
      // Minting ten RSA keys on two workers takes far longer than 150 ms: some finished after SIGTERM.
      assert.ok(ok.some((o) => o.at > termAt), `a renewal completed after SIGTERM: ${JSON.stringify(outcomes)}`);
      for (const o of outcomes) assert.ok('error' in o || o.status === 201 || o.status === 503, JSON.stringify(o));
      const { successors } = await assertConsistent(inst);
      assert.equal(successors, ok.length, 'every 201 has its successor, and nothing else was issued');
    });

    test('SIGKILL mid-renewal leaves no half-issued renewal, and retries finish the job once', async (t) => {
      const s = serve(inst);
      // A test that fails half-way must not leave its serve on the port for the next one.
      t.after(() => void s.child.kill('SIGKILL'));
      await ready(inst, ca, s);
      const pending = renewAll(inst, ca);
      await new Promise((r) => setTimeout(r, 200));
      s.child.kill('SIGKILL');
      await Promise.all(pending);
      await s.exited;
      await assertConsistent(inst);

      const again = serve(inst);
      t.after(() => void again.child.kill('SIGKILL'));
      await ready(inst, ca, again);
      const retried = await Promise.all(renewAll(inst, ca));
      for (const o of retried) assert.ok('status' in o && (o.status === 200 || o.status === 201), JSON.stringify(o));
      again.child.kill('SIGTERM');
      assert.equal(await again.exited, 0);
      const { successors } = await assertConsistent(inst);
      assert.equal(successors, RENEWALS);
    });
  });
}
