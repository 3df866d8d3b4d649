import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { isUniqueViolation, type Db, type Dialect } from '../db/database.js';
import type { Selectable, Updateable } from 'kysely';
import type { OnboardingJobsTable } from '../db/schema.js';

type JobRow = Selectable<OnboardingJobsTable>;
import type { Clock } from '../clock.js';
import type { AnyKeyType } from '../ca/keys.js';
import type { Pkcs12Profile } from '../ca/pkcs12.js';
import { appendAudit } from '../audit/log.js';
import { Refusal, isRefusal } from '../errors.js';
import { readRows, type OnboardRow } from './rows.js';
import { onboard, type OnboardDeps, type OnboardReport } from './onboard.js';
import { hashesBesideLogins } from '../identity/passwords.js';

/**
 * Onboarding from the operator console: the same `onboard` as the CLI, as a job. An upload is
 * checked whole (a dry run against the database) and shown as a preview; the operator starts it;
 * the run goes on in this process while the page polls its progress. Its files stay in the data
 * directory (onboarding/<id>/, owner-only) until the operator deletes them, because the .p12
 * passwords on the delivery slips exist nowhere else.
 *
 * With several processes or instances, any of them may show, resume or delete a job: the run is
 * claimed in the database (one running job in the whole service, a unique index), and the process
 * running it writes a heartbeat with its progress every HEARTBEAT_MS. A "running" job whose
 * heartbeat is older than STALE_MS has no process behind it (killed, restarted): it is shown as
 * interrupted, and starting it again finishes it (onboard issues nothing twice and still has every
 * sealed password, see onboard.ts).
 */

export type JobStatus = 'previewed' | 'running' | 'interrupted' | 'done' | 'failed';

export interface JobView {
  id: string;
  fileName: string;
  status: JobStatus;
  keyType: string;
  profile: string;
  createdBy: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  report: OnboardReport;
  error: string | null;
  /** While running (in this process or another, from its heartbeat); startedMs on this machine's clock. */
  progress: { done: number; total: number; startedMs: number } | undefined;
  /** The first rows as read, for the preview. */
  sample: OnboardRow[];
  totalRows: number;
  files: { name: string; bytes: number }[];
  filesDeleted: boolean;
}

export interface JobDeps {
  db: Db;
  clock: Clock;
  /** Where each job's files go: <dir>/<job id>/. */
  dir: string;
  /** Builds the issuing collaborators (the server's mint pool) when a run starts. */
  onboardDeps(): Promise<OnboardDeps>;
  settings: { portalUrl: string; operatorContact: string | undefined; font?: string | undefined; concurrency: number };
  /** PostgreSQL: heartbeats are dated by the database server, one clock for every instance. */
  dialect?: Dialect;
}

/** 2 MiB of CSV: some 10,000 rows, far more than one upload should carry. */
export const MAX_CSV_BYTES = 2 * 1024 * 1024;
const SAMPLE_ROWS = 20;
const ID = /^[0-9a-f]{24}$/;
export const HEARTBEAT_MS = 2000;
/** Many heartbeats: a busy process (a storm of renewals beside the run) is not taken for dead. */
export const STALE_MS = 20_000;

export const DOWNLOADS = { pdf: 'delivery-sheets.pdf', csv: 'onboard-result.csv' } as const;

export function onboardingJobs(deps: JobDeps) {
  /** Runs in flight in this process, for their exact progress and for settled(). */
  const live = new Map<string, { done: number; total: number; startedMs: number; finished: Promise<void>; lost: boolean }>();
  // Names this process's claims: a row's runner says which process must write its heartbeat and end.
  const runner = `${os.hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  // Not deps.clock: whether a process is alive is not a business date. Instances on several hosts
  // would compare their own clocks with each other's, so on PostgreSQL the server's clock dates
  // every heartbeat and judges it (SQLite: one host, its clock).
  const nowMs = async (): Promise<number> =>
    deps.dialect === 'postgres' ? Number((await sql<{ ms: number }>`select (extract(epoch from clock_timestamp()) * 1000)::bigint as ms`.execute(deps.db)).rows[0]!.ms) : Date.now();
  const alive = (row: JobRow, now: number) => row.status === 'running' && row.heartbeat_ms !== null && now - Number(row.heartbeat_ms) < STALE_MS;
  const outDir = (id: string) => path.join(deps.dir, id);

  const load = async (id: string): Promise<JobRow> => {
    if (!ID.test(id)) throw new Refusal('unknown_onboarding_job', 'no such onboarding job');
    const row = await deps.db.selectFrom('onboarding_jobs').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new Refusal('unknown_onboarding_job', 'no such onboarding job');
    return row;
  };

  const view = (row: JobRow, now: number): JobView => {
    const l = live.get(row.id);
    const running = Boolean(l) || alive(row, now);
    const status: JobStatus = row.status === 'running' && !running ? 'interrupted' : row.status;
    const progress = l ? { done: l.done, total: l.total, startedMs: l.startedMs } : running ? { done: row.progress_done, total: row.progress_total, startedMs: Date.now() - (now - Number(row.run_started_ms ?? now)) } : undefined;
    const { rows } = readRows(row.file_name, row.csv);
    let files: { name: string; bytes: number }[] = [];
    if (!row.files_deleted_at && fs.existsSync(outDir(row.id))) {
      files = fs
        .readdirSync(outDir(row.id))
        .filter((n) => !n.startsWith('.'))
        .sort()
        .map((name) => ({ name, bytes: fs.statSync(path.join(outDir(row.id), name)).size }));
    }
    return {
      id: row.id,
      fileName: row.file_name,
      status,
      keyType: row.key_type,
      profile: row.profile,
      createdBy: row.created_by,
      createdAt: row.created_at,
      startedAt: row.started_at,
      finishedAt: row.finished_at,
      report: JSON.parse(row.report) as OnboardReport,
      error: row.error,
      progress,
      sample: rows.slice(0, SAMPLE_ROWS),
      totalRows: rows.length,
      files,
      filesDeleted: Boolean(row.files_deleted_at),
    };
  };

  const dryRun = async (fileName: string, csv: string, keyType: AnyKeyType, profile: Pkcs12Profile) => {
    const { rows, errors } = readRows(fileName, csv);
    // continueOnError so the preview lists every problem rather than stopping at the refusal.
    return onboard(await deps.onboardDeps(), rows, errors, {
      file: fileName,
      outDir: '',
      keyType,
      profile,
      dryRun: true,
      continueOnError: true,
      actor: 'preview',
      portalUrl: deps.settings.portalUrl,
      operatorContact: deps.settings.operatorContact,
      concurrency: 1,
    });
  };

  return {
    /** Checks an upload whole and keeps it as a job to start. Nothing else changes. */
    async preview(input: { fileName: string; csv: string; keyType: AnyKeyType; profile: Pkcs12Profile; actor: string }): Promise<JobView> {
      const fileName = path.basename(input.fileName || 'upload.csv').slice(0, 200);
      if (Buffer.byteLength(input.csv) > MAX_CSV_BYTES) throw new Refusal('invalid_input', `the CSV is larger than ${MAX_CSV_BYTES / 1024 / 1024} MiB: split it into several uploads`, { field: 'csv' });
      if (input.csv.trim() === '') throw new Refusal('invalid_input', 'the CSV is empty', { field: 'csv' });
      const report = await dryRun(fileName, input.csv, input.keyType, input.profile);
      const id = randomBytes(12).toString('hex');
      const now = deps.clock.now().toISOString();
      await deps.db.transaction().execute(async (trx) => {
        await trx
          .insertInto('onboarding_jobs')
          .values({ id, file_name: fileName, csv: input.csv, status: 'previewed', key_type: input.keyType, profile: input.profile, created_by: input.actor, created_at: now, started_at: null, finished_at: null, report: JSON.stringify(report), error: null, files_deleted_at: null })
          .execute();
        await appendAudit(trx, deps.clock.now(), { actor: input.actor, action: 'onboarding.previewed', target: `onboarding:${id}`, details: { file: fileName, rows: report.rows, problems: report.skippedRows.length } });
      });
      return view(await load(id), await nowMs());
    },

    async get(id: string): Promise<JobView> {
      return view(await load(id), await nowMs());
    },

    async list(limit = 20): Promise<JobView[]> {
      const rows = await deps.db.selectFrom('onboarding_jobs').selectAll().orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
      const now = await nowMs();
      return rows.map((r) => view(r, now));
    },

    /**
     * Starts (or resumes) a job in the background. Rows with problems are skipped only when the
     * operator said so; otherwise a job with problems cannot start.
     */
    async start(id: string, o: { actor: string; skipBadRows: boolean }): Promise<void> {
      const row = await load(id);
      if (live.has(id) || alive(row, await nowMs())) return; // a second click, a reload of the POST, another process: already running
      if (row.status === 'done') throw new Refusal('onboarding_closed', 'this onboarding job is already done');
      if (row.files_deleted_at) throw new Refusal('onboarding_closed', 'the files of this job were deleted');
      const { rows, errors } = readRows(row.file_name, row.csv);
      const preview = JSON.parse(row.report) as OnboardReport;
      if (preview.skippedRows.length > 0 && !o.skipBadRows) throw new Refusal('invalid_input', `${preview.skippedRows.length} rows have problems: fix the CSV and upload it again, or choose to skip those rows`, { field: 'skip' });
      const startedAt = deps.clock.now().toISOString();
      const startedMs = await nowMs();
      let claimed: boolean;
      try {
        claimed = await deps.db.transaction().execute(async (trx) => {
          // Runs whose process is gone stop counting as running (this one too, if it was one).
          await trx.updateTable('onboarding_jobs').set({ status: 'interrupted' }).where('status', '=', 'running').where((eb) => eb.or([eb('heartbeat_ms', 'is', null), eb('heartbeat_ms', '<', startedMs - STALE_MS)])).execute();
          const r = await trx
            .updateTable('onboarding_jobs')
            .set({ status: 'running', started_at: row.started_at ?? startedAt, error: null, runner, heartbeat_ms: startedMs, run_started_ms: startedMs, progress_done: 0, progress_total: 0 })
            .where('id', '=', id)
            .where('status', 'in', ['previewed', 'interrupted', 'failed'])
            .where('files_deleted_at', 'is', null)
            .executeTakeFirst();
          // None: another process claimed it a moment ago.
          if (Number(r.numUpdatedRows) === 0) return false;
          await appendAudit(trx, deps.clock.now(), { actor: o.actor, action: row.status === 'previewed' ? 'onboarding.started' : 'onboarding.resumed', target: `onboarding:${id}`, details: { file: row.file_name, rows: rows.length, skipBadRows: o.skipBadRows } });
          return true;
        });
      } catch (e) {
        // onboarding_jobs_one_running: another job runs (here or in another process).
        if (isUniqueViolation(e)) throw new Refusal('onboarding_busy', 'another onboarding run is in progress: wait for it to finish');
        throw e;
      }
      if (!claimed) return;
      const state = { done: 0, total: 0, startedMs, finished: Promise.resolve(), lost: false };
      live.set(id, state);
      // Every write of the run is fenced by the claim: once another process took the job over (this
      // one looked dead to it) or the job was marked interrupted at shutdown, nothing here writes.
      const ours = () => deps.db.updateTable('onboarding_jobs').where('id', '=', id).where('runner', '=', runner).where('status', '=', 'running');
      const beat = async () => {
        const r = await ours().set({ heartbeat_ms: await nowMs(), progress_done: state.done, progress_total: state.total }).executeTakeFirst();
        if (Number(r.numUpdatedRows) === 0) state.lost = true;
      };
      const heartbeat = setInterval(() => void beat().catch(() => undefined), HEARTBEAT_MS);
      heartbeat.unref();
      /** Before each step that writes files or wipes a seal: a run that lost its claim stops there. */
      let claimReadAt = 0;
      const stillClaimed = async () => {
        // The flag at every call (close() sets it); the row at most once a second.
        if (!state.lost && Date.now() - claimReadAt >= 1000) {
          claimReadAt = Date.now();
          const now = await deps.db.selectFrom('onboarding_jobs').select(['status', 'runner']).where('id', '=', id).executeTakeFirst();
          if (now?.status !== 'running' || now.runner !== runner) state.lost = true;
        }
        if (state.lost) throw new Refusal('onboarding_lost', 'the run was taken over by another process (this one had not been heard from): it stops here; the job shows how the other run goes');
      };
      const finish = async (set: Updateable<OnboardingJobsTable>) => {
        clearInterval(heartbeat);
        await ours().set({ ...set, progress_done: state.done, progress_total: state.total, finished_at: deps.clock.now().toISOString() }).execute();
      };
      state.finished = (async () => {
        try {
          const report = await onboard(await deps.onboardDeps(), rows, errors, {
            file: row.file_name,
            outDir: outDir(id),
            keyType: row.key_type as AnyKeyType,
            profile: row.profile as Pkcs12Profile,
            dryRun: false,
            continueOnError: o.skipBadRows,
            actor: o.actor,
            portalUrl: deps.settings.portalUrl,
            operatorContact: deps.settings.operatorContact,
            font: deps.settings.font,
            concurrency: deps.settings.concurrency,
            // This runs inside `kenshin serve`: the clinics logging in meanwhile share the thread pool.
            hashesAtOnce: hashesBesideLogins(),
            progress: (done, total) => {
              state.done = done;
              state.total = total;
            },
            claim: stillClaimed,
          });
          await finish({ status: 'done', report: JSON.stringify(report) });
        } catch (e) {
          // A refusal's message is written for the operator; anything else is logged by the caller
          // and shown as a short line (never a stack trace, never a secret).
          await finish({ status: 'failed', error: isRefusal(e) ? e.message : `the run stopped: ${(e as Error).message ?? String(e)}` }).catch(() => undefined);
          if (!isRefusal(e)) throw e;
        } finally {
          clearInterval(heartbeat);
          live.delete(id);
        }
      })();
      state.finished.catch(() => undefined);
    },

    /** Waits for a run in this process (tests, shutdown). */
    async settled(id: string): Promise<void> {
      await live.get(id)?.finished.catch(() => undefined);
    },

    /** The absolute path of one of the job's files, after checking the name; audited by the caller's transaction. */
    async file(id: string, name: string, actor: string): Promise<string> {
      const row = await load(id);
      const v = view(row, await nowMs());
      if (!v.files.some((f) => f.name === name)) throw new Refusal('unknown_onboarding_job', 'no such file in this onboarding job');
      await deps.db.transaction().execute(async (trx) => appendAudit(trx, deps.clock.now(), { actor, action: 'onboarding.downloaded', target: `onboarding:${id}`, details: { file: name } }));
      return path.join(outDir(id), name);
    },

    /** The .p12 files of a job, for a zip; audited once. */
    async certificateFiles(id: string, actor: string): Promise<string[]> {
      const row = await load(id);
      const names = view(row, await nowMs()).files.filter((f) => f.name.endsWith('.p12')).map((f) => f.name);
      if (names.length === 0) throw new Refusal('unknown_onboarding_job', 'this onboarding job has no certificate files');
      await deps.db.transaction().execute(async (trx) => appendAudit(trx, deps.clock.now(), { actor, action: 'onboarding.downloaded', target: `onboarding:${id}`, details: { file: 'certificates.zip', certificates: names.length } }));
      return names.map((n) => path.join(outDir(id), n));
    },

    /** Deletes the job's files (the only copy of the passwords): once they are delivered. */
    async deleteFiles(id: string, actor: string): Promise<void> {
      const row = await load(id);
      if (live.has(id)) throw new Refusal('onboarding_busy', 'the run is still in progress');
      const now = await nowMs();
      await deps.db.transaction().execute(async (trx) => {
        // Conditional, so that a resume in another process and this delete cannot both go ahead.
        const r = await trx
          .updateTable('onboarding_jobs')
          .set({ files_deleted_at: deps.clock.now().toISOString() })
          .where('id', '=', id)
          .where('files_deleted_at', 'is', null)
          .where((eb) => eb.or([eb('status', '<>', 'running'), eb('heartbeat_ms', 'is', null), eb('heartbeat_ms', '<', now - STALE_MS)]))
          .executeTakeFirst();
        if (Number(r.numUpdatedRows) === 0) throw new Refusal('onboarding_busy', row.files_deleted_at ? 'the files of this job were deleted' : 'the run is still in progress');
        await appendAudit(trx, deps.clock.now(), { actor, action: 'onboarding.files_deleted', target: `onboarding:${id}`, details: { file: row.file_name } });
        // Inside the transaction: if they cannot be removed, the job does not say they were.
        fs.rmSync(outDir(id), { recursive: true, force: true });
      });
    },

    /**
     * At shutdown: this process's runs end with it. Marked interrupted now, so that 「再開する」 works
     * at once (and the run, should it go on for the grace period, stops at its next step).
     */
    async close(): Promise<void> {
      for (const state of live.values()) state.lost = true;
      await deps.db.updateTable('onboarding_jobs').set({ status: 'interrupted' }).where('runner', '=', runner).where('status', '=', 'running').execute();
    },
  };
}

export type OnboardingJobs = ReturnType<typeof onboardingJobs>;
