import pino, { type Logger } from 'pino';

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
  '*.password',
  '*.pass',
  '*.token',
  '*.privateKey',
  '*.pkcs12',
];

export function requestLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, redact: { paths: REDACT, censor: '[redacted]' }, base: { service: 'kenshin' } }, destination ?? process.stdout);
}
