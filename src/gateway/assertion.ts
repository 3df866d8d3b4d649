import { SignJWT } from 'jose';
import type { GatewayKeys } from './signing-key.js';
import type { GatewayIdentity } from './identity.js';

/**
 * X-Kenshin-Assertion: the identity headers' facts, signed by Kenshin, for an application that
 * wants proof rather than trust in its network path (a header set by nginx is only as good as the
 * guarantee that nothing else reaches the application). Short-lived (ASSERTION_SECONDS): it is
 * minted per request, so a copied one is soon worthless, and `cnf` binds it to the certificate
 * (RFC 8705) for an application that sees the certificate itself.
 */
export const ASSERTION_SECONDS = 60;
export const ASSERTION_TYPE = 'kenshin-assertion+jwt';

export interface AssertionSettings {
  keys: GatewayKeys;
  issuer: string;
  audience: string;
}

/** `sub` is unique across tenants: login IDs are unique per tenant only. */
export const subjectOf = (id: Pick<GatewayIdentity, 'tenant' | 'user'>) => `${id.tenant.code}/${id.user.loginId}`;

export async function signAssertion(s: AssertionSettings, id: GatewayIdentity, now: Date): Promise<string> {
  const iat = Math.floor(now.getTime() / 1000);
  return new SignJWT({
    tenant: id.tenant.code,
    institution: id.institution.number,
    institution_name: id.institution.name,
    login_id: id.user.loginId,
    role: id.user.role,
    certificate: { serial: id.certificate.serial, not_after: id.certificate.notAfter, days_left: id.certificate.daysLeft },
    cnf: { 'x5t#S256': id.certificate.thumbprint },
  })
    .setProtectedHeader({ alg: 'ES256', kid: s.keys.kid, typ: ASSERTION_TYPE })
    .setIssuer(s.issuer)
    .setAudience(s.audience)
    .setSubject(subjectOf(id))
    .setIssuedAt(iat)
    .setExpirationTime(iat + ASSERTION_SECONDS)
    .sign(s.keys.privateKey);
}

/**
 * The headers the application receives, in this order in deploy/nginx-gateway.conf. nginx sets
 * each one with proxy_set_header, which replaces whatever the client sent under that name; Kenshin's
 * built-in proxy deletes them from the client's request first.
 */
export const IDENTITY_HEADERS = [
  'x-kenshin-tenant',
  'x-kenshin-institution',
  'x-kenshin-institution-name',
  'x-kenshin-user',
  'x-kenshin-role',
  'x-kenshin-certificate-serial',
  'x-kenshin-certificate-not-after',
  'x-kenshin-certificate-days-left',
  'x-kenshin-assertion',
] as const;

export function identityHeaders(id: GatewayIdentity, assertion: string): Record<(typeof IDENTITY_HEADERS)[number], string> {
  return {
    'x-kenshin-tenant': id.tenant.code,
    'x-kenshin-institution': id.institution.number,
    // Header values are bytes, and most stacks read them as Latin-1: UTF-8 percent-encoded survives.
    'x-kenshin-institution-name': encodeURIComponent(id.institution.name),
    'x-kenshin-user': id.user.loginId,
    'x-kenshin-role': id.user.role,
    'x-kenshin-certificate-serial': id.certificate.serial,
    'x-kenshin-certificate-not-after': id.certificate.notAfter,
    'x-kenshin-certificate-days-left': String(id.certificate.daysLeft),
    'x-kenshin-assertion': assertion,
  };
}
