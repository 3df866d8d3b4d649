import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import { ZipArchive } from 'archiver';
import { sendPage, type AppDeps } from '../web/context.js';
import { tokensMatch } from '../web/csrf.js';
import { errorPage } from '../web/views/refusal.js';
import { body, LIMIT, params } from '../web/input.js';
import { isRefusal } from '../errors.js';
import type { Portal } from '../web/routes/portal.js';
import { onboardingJobs, MAX_CSV_BYTES, type OnboardingJobs } from '../onboarding/jobs.js';
import { decodeCsv } from '../onboarding/rows.js';
import { operatorContext, requireOperator } from './guard.js';
import { onboardJobPage, onboardPage } from './onboarding-views.js';

/**
 * Bulk onboarding in the console: upload a CSV (multipart, in this plugin's scope only), see the
 * preview, start it, watch its progress, download the PDF, the .p12 files (one ZIP) and the
 * result CSV, then delete them. The work is onboarding/jobs.ts; these routes only read the form.
 */
export function onboardingRoutes(deps: AppDeps, jobs: OnboardingJobs = defaultJobs(deps)) {
  return async (app: FastifyInstance) => {
    await app.register(multipart, { limits: { fileSize: MAX_CSV_BYTES, files: 1, fields: 8, fieldSize: 1024, parts: 10 } });
    // A run of this process ends with it: shown as 中断 at once, to be resumed by the next start.
    app.addHook('onClose', async () => jobs.close().catch(() => undefined));

    const jobParam = params({ id: LIMIT.downloadId });
    const withOperator = (fn: (req: FastifyRequest, reply: FastifyReply, p: Portal) => Promise<unknown>) => async (req: FastifyRequest, reply: FastifyReply) => {
      const p = await requireOperator(deps, req, reply);
      if (!p) return reply;
      return fn(req, reply, p);
    };
    const actor = (p: Portal) => `operator:${p.user.login_id}`;
    const csrfFailed = (req: FastifyRequest, reply: FastifyReply, p: Portal) => sendPage(reply, 403, errorPage(operatorContext(req, p), req.kenshin.t('error.csrf')));
    const showList = async (req: FastifyRequest, reply: FastifyReply, p: Portal, status = 200, error?: string) =>
      sendPage(reply, status, onboardPage(operatorContext(req, p), { jobs: await jobs.list(), csrf: p.session.csrf_token, error }), { noStore: true });
    const showJob = async (req: FastifyRequest, reply: FastifyReply, p: Portal, id: string, status = 200, error?: string) =>
      sendPage(reply, status, onboardJobPage(operatorContext(req, p), await jobs.get(id), { csrf: p.session.csrf_token, error }), { noStore: true });

    app.get('/admin/onboard', withOperator((req, reply, p) => showList(req, reply, p)));

    // multipart/form-data: no JSON-schema body; the fields are read and bounded here.
    app.post(
      '/admin/onboard',
      { config: { multipartBody: true } },
      withOperator(async (req, reply, p) => {
        if (!req.isMultipart()) return showList(req, reply, p, 400, req.kenshin.t('error.input.invalid', { field: 'csv' }));
        const fields: Record<string, string> = {};
        let file: { name: string; bytes: Buffer } | undefined;
        try {
          for await (const part of req.parts()) {
            if (part.type === 'file') file = { name: part.filename, bytes: await part.toBuffer() };
            else if (typeof part.value === 'string') fields[part.fieldname] = part.value;
          }
        } catch (e) {
          const tooLarge = (e as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE';
          return showList(req, reply, p, tooLarge ? 413 : 400, tooLarge ? `CSV: ${MAX_CSV_BYTES / 1024 / 1024} MiB まで / at most ${MAX_CSV_BYTES / 1024 / 1024} MiB` : req.kenshin.t('error.input.invalid', { field: 'csv' }));
        }
        if (!tokensMatch(p.session.csrf_token, fields._csrf)) return csrfFailed(req, reply, p);
        if (!file || file.bytes.length === 0) return showList(req, reply, p, 400, req.kenshin.t('error.input.invalid', { field: 'csv' }));
        const decoded = decodeCsv(file.bytes);
        if ('error' in decoded) return showList(req, reply, p, 400, `${file.name}: ${decoded.error}`);
        try {
          const job = await jobs.preview({
            fileName: file.name,
            csv: decoded.text,
            keyType: fields.key === 'p256' || fields.key === 'rsa2048' ? fields.key : deps.runtime.config.defaultKeyType,
            profile: fields.profile === 'modern' ? 'modern' : 'compatible',
            actor: actor(p),
          });
          return reply.redirect(`/admin/onboard/${job.id}`, 303);
        } catch (e) {
          if (!isRefusal(e)) throw e;
          return showList(req, reply, p, 400, e.message);
        }
      }),
    );

    app.get('/admin/onboard/:id', { schema: { params: jobParam } }, withOperator((req, reply, p) => showJob(req, reply, p, (req.params as { id: string }).id)));

    app.post(
      '/admin/onboard/:id/start',
      { schema: { params: jobParam, body: body({ skip: LIMIT.word }) } },
      withOperator(async (req, reply, p) => {
        const id = (req.params as { id: string }).id;
        const b = (req.body ?? {}) as Record<string, string>;
        if (!tokensMatch(p.session.csrf_token, b._csrf)) return csrfFailed(req, reply, p);
        try {
          await jobs.start(id, { actor: actor(p), skipBadRows: b.skip === '1' });
        } catch (e) {
          if (!isRefusal(e) || e.code === 'unknown_onboarding_job') throw e;
          return showJob(req, reply, p, id, 409, e.message);
        }
        return reply.redirect(`/admin/onboard/${id}`, 303);
      }),
    );

    app.get(
      '/admin/onboard/:id/files/:name',
      { schema: { params: params({ id: LIMIT.downloadId, name: LIMIT.name }) } },
      withOperator(async (req, reply, p) => {
        const { id, name } = req.params as { id: string; name: string };
        const file = await jobs.file(id, name, actor(p));
        const type = name.endsWith('.pdf') ? 'application/pdf' : name.endsWith('.csv') ? 'text/csv; charset=utf-8' : 'application/x-pkcs12';
        return reply.type(type).header('Content-Disposition', `attachment; filename="${path.basename(file)}"`).header('Cache-Control', 'no-store').send(fs.createReadStream(file));
      }),
    );

    app.get(
      '/admin/onboard/:id/certificates.zip',
      { schema: { params: jobParam } },
      withOperator(async (req, reply, p) => {
        const id = (req.params as { id: string }).id;
        const files = await jobs.certificateFiles(id, actor(p));
        // Stored, not deflated: a .p12 is encrypted and does not compress.
        const zip = new ZipArchive({ store: true });
        for (const f of files) zip.file(f, { name: path.basename(f) });
        void zip.finalize();
        return reply.type('application/zip').header('Content-Disposition', `attachment; filename="certificates-${id.slice(0, 8)}.zip"`).header('Cache-Control', 'no-store').send(zip);
      }),
    );

    app.post(
      '/admin/onboard/:id/delete-files',
      { schema: { params: jobParam, body: body({}) } },
      withOperator(async (req, reply, p) => {
        const id = (req.params as { id: string }).id;
        const b = (req.body ?? {}) as Record<string, string>;
        if (!tokensMatch(p.session.csrf_token, b._csrf)) return csrfFailed(req, reply, p);
        try {
          await jobs.deleteFiles(id, actor(p));
        } catch (e) {
          if (!isRefusal(e) || e.code === 'unknown_onboarding_job') throw e;
          return showJob(req, reply, p, id, 409, e.message);
        }
        return reply.redirect(`/admin/onboard/${id}`, 303);
      }),
    );
  };
}

function defaultJobs(deps: AppDeps): OnboardingJobs {
  const config = deps.runtime.config;
  return onboardingJobs({
    db: deps.runtime.database.db,
    clock: deps.runtime.clock,
    dir: path.join(config.dataDir, 'onboarding'),
    dialect: deps.runtime.database.dialect,
    onboardDeps: async () => deps.renewal,
    settings: { portalUrl: config.publicUrl, operatorContact: config.operatorContact || undefined, font: process.env.KENSHIN_PDF_FONT, concurrency: Math.max(1, config.mintWorkers) * 2 },
  });
}
