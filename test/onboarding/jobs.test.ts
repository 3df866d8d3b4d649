import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { makeWorld } from '../helpers/world.js';
import { testDialects } from '../helpers/databases.js';
import { onboardingJobs, STALE_MS } from '../../src/onboarding/jobs.js';
import { onboard } from '../../src/onboarding/onboard.js';
import { readRows } from '../../src/onboarding/rows.js';
import { turnCounter } from '../helpers/turns.js';
import { Refusal } from '../../src/errors.js';

/**
 * Console onboarding jobs seen from two processes on one database (KENSHIN_PROCESSES > 1, or two
 * instances): the page a job is shown on, resumed from or deleted from is served by whichever
 * process the connection landed on. Two job services over one real database stand for them.
 */

const HEADER = 'tenant_code,tenant_name,contact_email,institution_number,institution_name,users,label';
const csv = (prefix: string, digits: string) =>
  [HEADER, ...Array.from({ length: 4 }, (_, i) => [`${prefix}00${i}`, `${prefix}クリニック${i}`, `info${i}@c${i}.example.jp`, `${digits}0000000${i}`, `健診センター${i}`, `${prefix.toLowerCase()}${i}-admin:管理者`, '受付PC'].join(','))].join('\n') + '\n';

for (const dialect of testDialects()) {
  describe(`onboarding jobs across processes on ${dialect}`, async () => {
    const w = await makeWorld(dialect, { env: { KENSHIN_MINT_WORKERS: '0' } });
    const db = w.runtime.database.db;
    let hold: Promise<void> = Promise.resolve();
    const processService = () =>
      onboardingJobs({
        db,
        clock: w.clock,
        dir: path.join(w.dir, 'onboarding'),
        onboardDeps: async () => {
          await hold;
          return w.runtime.renewalDeps();
        },
        settings: { portalUrl: 'https://kenshin.example.jp/', operatorContact: undefined, concurrency: 2 },
        dialect: w.runtime.database.dialect,
      });
    const a = processService();
    const b = processService();
    const preview = (fileName: string, text: string) => a.preview({ fileName, csv: text, keyType: 'p256', profile: 'compatible', actor: 'ops' });
    const actions = async (id: string) => (await db.selectFrom('audit_events').select('action').where('target', '=', `onboarding:${id}`).orderBy('id').execute()).map((r) => r.action);

    test('a run in one process is running in the other: not interrupted, not started twice, no second job, files kept', async () => {
      const one = await preview('one.csv', csv('E', '31'));
      const two = await preview('two.csv', csv('F', '32'));
      let release!: () => void;
      hold = new Promise((r) => (release = r));
      await a.start(one.id, { actor: 'ops', skipBadRows: false });

      const seen = await b.get(one.id);
      assert.equal(seen.status, 'running');
      assert.ok(seen.progress, 'the other process shows the progress from the heartbeat');
      await b.start(one.id, { actor: 'ops2', skipBadRows: false });
      await assert.rejects(b.start(two.id, { actor: 'ops2', skipBadRows: false }), (e: Error & { code?: string }) => e.code === 'onboarding_busy');
      await assert.rejects(b.deleteFiles(one.id, 'ops2'), (e: Error & { code?: string }) => e.code === 'onboarding_busy');

      release();
      await a.settled(one.id);
      assert.equal((await b.get(one.id)).status, 'done');
      assert.deepEqual(await actions(one.id), ['onboarding.previewed', 'onboarding.started']);
      const issued = await db.selectFrom('certificates').innerJoin('tenants', 'tenants.id', 'certificates.tenant_id').select('certificates.id').where('tenants.code', 'like', 'E00%').execute();
      assert.equal(issued.length, 4);

      // Now the other job may start, in either process.
      await b.start(two.id, { actor: 'ops2', skipBadRows: false });
      await b.settled(two.id);
      assert.equal((await a.get(two.id)).status, 'done');
    });

    test('a run whose process died (its heartbeat stopped) is interrupted everywhere, does not block the next job, and resumes once', async () => {
      const dead = await preview('dead.csv', csv('G', '33'));
      const next = await preview('next.csv', csv('H', '34'));
      // What a process killed mid-run leaves: "running", its last heartbeat long ago.
      await db.updateTable('onboarding_jobs').set({ status: 'running', runner: 'gone:1:x', heartbeat_ms: Date.now() - STALE_MS - 1000, run_started_ms: Date.now() - STALE_MS - 5000 }).where('id', '=', dead.id).execute();
      assert.equal((await a.get(dead.id)).status, 'interrupted');
      assert.equal((await b.get(dead.id)).progress, undefined);

      await b.start(next.id, { actor: 'ops', skipBadRows: false });
      await b.settled(next.id);
      assert.equal((await a.get(next.id)).status, 'done');

      await Promise.all([a.start(dead.id, { actor: 'ops', skipBadRows: false }), b.start(dead.id, { actor: 'ops2', skipBadRows: false })]);
      await Promise.all([a.settled(dead.id), b.settled(dead.id)]);
      assert.equal((await a.get(dead.id)).status, 'done');
      assert.deepEqual(await actions(dead.id), ['onboarding.previewed', 'onboarding.resumed'], 'resumed by one of the two');
    });

    test('a run that lost its claim (another process took it over) stops before it creates, issues, writes a file or wipes a seal', async () => {
      const job = await preview('lost.csv', csv('J', '35'));
      let release!: () => void;
      hold = new Promise((r) => (release = r));
      await a.start(job.id, { actor: 'ops', skipBadRows: false });
      // What another process does when this one looked dead: the job is its run now.
      await db.updateTable('onboarding_jobs').set({ runner: 'other:2:y', heartbeat_ms: Date.now() + 60_000 }).where('id', '=', job.id).execute();
      release();
      await a.settled(job.id);
      const row = await db.selectFrom('onboarding_jobs').select(['status', 'runner', 'finished_at']).where('id', '=', job.id).executeTakeFirstOrThrow();
      assert.deepEqual(row, { status: 'running', runner: 'other:2:y', finished_at: null }, 'the other run’s row is left alone');
      assert.equal(fs.existsSync(path.join(w.dir, 'onboarding', job.id, 'delivery-sheets.pdf')), false);
      // It stopped at its first step: nothing created or issued that the other run would race.
      const tenants = await db.selectFrom('tenants').select('id').where('code', 'like', 'J00%').execute();
      assert.deepEqual(tenants, []);
      await db.updateTable('onboarding_jobs').set({ status: 'interrupted' }).where('id', '=', job.id).execute();
    });

    test('at shutdown a process marks its runs interrupted: resumable at once from another', async () => {
      const job = await preview('shutdown.csv', csv('K', '36'));
      const c = processService();
      let release!: () => void;
      hold = new Promise((r) => (release = r));
      await c.start(job.id, { actor: 'ops', skipBadRows: false });
      await c.close();
      assert.equal((await b.get(job.id)).status, 'interrupted');
      release();
      await c.settled(job.id);
      hold = Promise.resolve();
      await b.start(job.id, { actor: 'ops', skipBadRows: false });
      await b.settled(job.id);
      assert.equal((await a.get(job.id)).status, 'done');
      assert.deepEqual(await actions(job.id), ['onboarding.previewed', 'onboarding.started', 'onboarding.resumed']);
    });
  });
}

describe('onboard() asks its claim before every password it wipes', async () => {
  const w = await makeWorld('sqlite', { env: { KENSHIN_MINT_WORKERS: '0' } });
  const db = w.runtime.database.db;

  test('a run whose claim ends during the wipe leaves every later seal in place', async () => {
    const { rows, errors } = readRows('wipe.csv', csv('L', '37'));
    const wiped = async () => Number((await db.selectFrom('handovers').select((eb) => eb.fn.countAll<number>().as('n')).where('package_sealed', 'is', null).executeTakeFirstOrThrow()).n);
    const claim = async () => {
      // The claim is lost once two passwords are wiped (another process took over, or a shutdown).
      if ((await wiped()) >= 2) throw new Refusal('onboarding_lost', 'lost');
    };
    const outDir = path.join(w.dir, 'wipe-out');
    await assert.rejects(
      onboard(await w.runtime.renewalDeps(), rows, errors, { file: 'wipe.csv', outDir, keyType: 'p256', profile: 'compatible', dryRun: false, continueOnError: false, actor: 'test', portalUrl: 'https://kenshin.example.jp/', operatorContact: undefined, concurrency: 2, claim }),
      /lost/,
    );
    assert.equal(await wiped(), 2, 'the two before the claim ended, none after');
  });
});

describe('onboard() gives the event loop a turn before every row it writes out and every seal it wipes', async () => {
  const w = await makeWorld('sqlite', { env: { KENSHIN_MINT_WORKERS: '0' } });

  test('no two claims of the files and the wipe steps fall in one turn', async () => {
    // In `kenshin serve` (the console's job) every row's .p12 is fsync'd on the event loop's thread
    // and SQLite answers synchronously: a turn every 50 rows held the process's other requests
    // up to half a second. The claim is asked before each row and each seal; each records its turn.
    const counter = turnCounter();
    const turns: number[] = [];
    const { rows, errors } = readRows('turns.csv', csv('M', '38'));
    const outDir = path.join(w.dir, 'turns-out');
    try {
      await onboard(await w.runtime.renewalDeps(), rows, errors, { file: 'turns.csv', outDir, keyType: 'p256', profile: 'compatible', dryRun: false, continueOnError: false, actor: 'test', portalUrl: 'https://kenshin.example.jp/', operatorContact: undefined, concurrency: 2, claim: async () => void turns.push(counter.count) });
    } finally {
      counter.stop();
    }
    // The last twelve claims: the 4 rows written out, the one before the PDF, the PDF's before its
    // rename, the one before the wipe, the 4 seals, the final one. Each row and each seal has a turn
    // of its own (and the first seal one after the claim before the wipe).
    const [r0, r1, r2, r3, , , preWipe, s0, s1, s2, s3] = turns.slice(-12) as number[];
    const rowsAndSeals = [r0!, r1!, r2!, r3!, preWipe!, s0!, s1!, s2!, s3!];
    const sharing = rowsAndSeals.filter((t, i) => i > 0 && i !== 4 && t <= rowsAndSeals[i - 1]!).length;
    assert.equal(sharing, 0, `rows and seals sharing a turn with the one before (turns ${turns.slice(-12).join(' ')})`);
  });
});
