import type { FastifyError, RouteOptions } from 'fastify';
import type { MessageKey } from './i18n/ja.js';
import type { T } from './i18n/index.js';

/**
 * The shape of every request at the edge: JSON schemas Fastify checks before a handler runs, so a
 * repeated form field (`a=1&a=2` arrives as an array), a JSON number or object where text belongs,
 * or a 15 KB login ID is a 400 naming the field, before any database work or audit row. The domain
 * still checks meaning (what a 機関番号 is, which names are printable); this only bounds the shape.
 *
 * Limits are in characters (code points; Ajv counts them so). They follow the domain's rules, with
 * one exception: names allow 128 here because a decomposed (NFD) paste of a 64-character Japanese
 * name is up to twice as long before the domain normalises it to NFC and applies X.520's 64.
 */
declare module 'fastify' {
  interface FastifyContextConfig {
    /** An upload route: its handler reads and bounds the multipart parts itself (see requireSchemas). */
    multipartBody?: boolean;
  }
}

export const LIMIT = {
  csrf: 128,
  loginId: 64,
  password: 256,
  name: 128,
  label: 128,
  email: 254,
  tenantCode: 32,
  institutionNumber: 10,
  /** A comma-separated list of 機関番号: 100 of them. */
  institutionList: 1100,
  serial: 128,
  reason: 32,
  /** Short keywords: role, key type, profile, status, format, lang, checkbox values. */
  word: 16,
  downloadId: 64,
  /**
   * `rd`: the local path to return to after login. The schema only bounds it; returnPath()
   * (views/layout.ts) drops one longer than 2,048 characters or off this site, so a bad link
   * still leads to the login and home rather than to an error page.
   */
  returnPath: 8192,
  institutionId: 20,
  /** A keyset cursor a list gave out (base64url of an expiry and an id, or an id). */
  cursor: 100,
  /** Audit search: actor and action text. */
  search: 128,
  date: 32,
} as const;

type Schema = Record<string, unknown>;
export const text = (maxLength: number): Schema => ({ type: 'string', maxLength });

/**
 * A form or JSON body of optional text fields (the handler or the domain says which are required,
 * with a better message). Unknown fields are dropped (Fastify's removeAdditional), not refused: a
 * browser extension adding one must not break a form. Every form carries the CSRF token.
 */
export const body = (fields: Record<string, number> = {}): Schema => ({
  // No body at all is not a wrong shape: the handler's checks answer it (a missing CSRF token, or the
  // refusal page for a certificate nginx rejected, which nginx forwards without its body).
  type: ['object', 'null'],
  additionalProperties: false,
  properties: Object.fromEntries(Object.entries({ _csrf: LIMIT.csrf, ...fields }).map(([k, n]) => [k, text(n)])),
});

/** JSON API bodies the route does not read: absent, or an object (monsiaj sends `{}`). */
export const ignoredJsonBody: Schema = { type: ['object', 'null'], additionalProperties: false };

/** Query parameters; every route may carry ?lang= (read by the onRequest hook). */
export const query = (fields: Record<string, number> = {}): Schema => ({
  type: 'object',
  properties: Object.fromEntries(Object.entries({ lang: LIMIT.word, ...fields }).map(([k, n]) => [k, text(n)])),
});

/** Path parameters: all present (the router matched them), each bounded. */
export const params = (fields: Record<string, number>): Schema => ({
  type: 'object',
  required: Object.keys(fields),
  properties: Object.fromEntries(Object.entries(fields).map(([k, n]) => [k, text(n)])),
});

/**
 * Registered as an onRoute hook before the routes: a route without a query schema gets the default
 * one, and a route that takes a body without a body schema is a startup error, so no new form can
 * forget its schema.
 */
export function requireSchemas(route: RouteOptions): void {
  const schema = (route.schema ??= {}) as { querystring?: unknown; body?: unknown };
  schema.querystring ??= query();
  const methods = ([] as string[]).concat(route.method);
  // The built-in reverse proxy forwards the application's bodies as they are: they are the
  // application's to validate, not Kenshin's (gateway/built-in-proxy.ts marks its routes).
  if ((route.config as { passThroughBody?: boolean } | undefined)?.passThroughBody) return;
  // An upload (multipart/form-data) has no JSON-schema body: its handler reads and bounds each part
  // (admin/onboarding-routes.ts, with @fastify/multipart's limits).
  if ((route.config as { multipartBody?: boolean } | undefined)?.multipartBody) return;
  if (methods.some((m) => m !== 'GET' && m !== 'HEAD') && schema.body === undefined) {
    throw new Error(`${methods.join(',')} ${route.url}: every route that takes a body needs a body schema (src/web/input.ts)`);
  }
}

export interface InvalidField {
  /** The field as the form or JSON names it ("loginId"), or the part ("body") when the whole is wrong. */
  field: string;
  /** English, for logs and the API: "loginId: must NOT have more than 64 characters". */
  message: string;
  kind: 'tooLong' | 'notText' | 'invalid';
  limit?: number;
}

export function isValidationError(e: unknown): e is FastifyError & { validation: NonNullable<FastifyError['validation']> } {
  return Array.isArray((e as FastifyError | undefined)?.validation);
}

export function invalidField(e: FastifyError & { validation: NonNullable<FastifyError['validation']> }): InvalidField {
  const first = e.validation[0];
  const part = e.validationContext === 'querystring' ? 'query' : (e.validationContext ?? 'body');
  const params = (first?.params ?? {}) as { missingProperty?: string; limit?: number };
  const field = params.missingProperty ?? (first?.instancePath ? first.instancePath.replace(/^\//, '').split('/')[0]! : part);
  const kind = first?.keyword === 'maxLength' ? 'tooLong' : first?.keyword === 'type' ? 'notText' : 'invalid';
  return { field, message: `${field}: ${first?.message ?? 'is not valid'}`, kind, ...(kind === 'tooLong' ? { limit: params.limit } : {}) };
}

/** The words a user saw on the form, where the catalogs have them; otherwise the field's own name. */
const FIELD_LABELS: Record<string, MessageKey> = {
  loginId: 'login.loginId',
  login: 'login.loginId',
  password: 'login.password',
  code: 'admin.code',
  name: 'admin.name',
  email: 'admin.email',
  institutions: 'admin.institutions',
  role: 'admin.role',
  label: 'admin.label',
  number: 'institutions.number',
  institutionId: 'home.institution',
};

export function invalidFieldMessage(t: T, f: InvalidField): string {
  const key = FIELD_LABELS[f.field];
  const field = key ? (t as (k: MessageKey) => string)(key) : f.field;
  if (f.kind === 'tooLong') return t('error.input.tooLong', { field, limit: f.limit ?? 0 });
  if (f.kind === 'notText') return t('error.input.notText', { field });
  return t('error.input.invalid', { field });
}
