import cluster from 'node:cluster';
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';

/**
 * The request log: pino JSON, one line per request. Fastify's serializers log method, URL, host,
 * remote address and status only — never bodies or headers — and the paths below are redacted as a
 * second line of defence, so passwords, package passwords, cookies and keys cannot reach the log.
 * Download URLs carry an unguessable id that only works with the owner's certificate.
 */
export const REDACT = [
  'req.headers.cookie',
  'req.headers.authorization',
  'res.headers["set-cookie"]',
  // Top level and one level down: pino's `*.x` does not match a top-level `x`.
  'password',
  'pass',
  'token',
  'privateKey',
  'pkcs12',
  '*.password',
  '*.pass',
  '*.token',
  '*.privateKey',
  '*.pkcs12',
];

/**
 * What a request line says about the request. Fastify's own serializer reads `req.ip` and
 * `req.host`, which behind a proxy (trustProxy) parse every address of X-Forwarded-For with
 * ipaddr.js: that was a quarter of the CPU of a forward-auth check. Here the socket's address is
 * written as it is ("unix" for the proxy's socket) and the proxy's X-Forwarded-For beside it, as
 * given: the log shows what arrived and leaves the judging to whoever reads it.
 */
export function requestSummary(req: { method?: string; url?: string; headers?: Record<string, string | string[] | undefined>; socket?: { remoteAddress?: string | undefined; remotePort?: number | undefined } }) {
  const forwarded = req.headers?.['x-forwarded-for'];
  return {
    method: req.method,
    url: req.url,
    host: req.headers?.host,
    remoteAddress: req.socket?.remoteAddress ?? 'unix',
    remotePort: req.socket?.remotePort,
    ...(forwarded ? { forwardedFor: String(forwarded).slice(0, 200) } : {}),
  };
}

/**
 * JSON for machines; on a terminal (`npm start`, a newcomer watching) readable lines instead, with
 * the same redaction (pino redacts before the line is formatted).
 */
export function requestLogger(level: string, destination?: NodeJS.WritableStream, format: 'auto' | 'json' | 'pretty' = 'auto'): Logger {
  const out = destination ?? process.stdout;
  const readable = format === 'pretty' || (format === 'auto' && (out as { isTTY?: boolean }).isTTY === true);
  // With several serve processes (web/processes.ts) each line says which one wrote it: they share one stdout.
  const options = { level, redact: { paths: REDACT, censor: '[redacted]' }, base: { service: 'kenshin', ...(cluster.isWorker ? { pid: process.pid } : {}) }, serializers: { req: requestSummary } };
  if (!readable) return pino(options, out);
  // sync: lines appear in order with the CLI's own output, and none is lost at exit.
  return pino(options, pretty({ destination: out, sync: true, colorize: (out as { isTTY?: boolean }).isTTY === true, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss', ignore: 'pid,hostname,service' }));
}

/**
 * One line per request, when it completes, with the request's method, URL and address beside the
 * status (Fastify's default also writes a line when a request arrives: twice the logging work per
 * request, which showed in the mTLS benchmark, for nothing a completed line does not say).
 */
export class OneLinePerRequest extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error) reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored');
    // A forward-auth check that lets the request through comes before every application request
    // and the proxy logs that request itself: at info level it would double the log and cost a
    // tenth of the check. Refusals stay at info; LOG_LEVEL=debug shows every check.
    else if (reply.statusCode === 200 && request.url.startsWith('/auth/verify')) reply.log.debug({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
    else reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }
}
