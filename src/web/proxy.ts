import net from 'node:net';
import type { FastifyRequest } from 'fastify';
import { x509 } from '../ca/x509.js';
import { fingerprintOf, type PresentedCertificate } from '../identity/peer.js';
import { signedByOneOf } from '../identity/issuers.js';

/**
 * Proxy mode: the reverse proxy terminated TLS (and so checked that the client holds the key) and
 * forwards the certificate in a header. The header is believed only from the configured proxy
 * addresses: from anyone else it is exactly as if no certificate was presented, because anyone can
 * type a header. Kenshin then decides as in direct mode: the DER must be one we issued (fingerprint
 * in our database), and its dates and revocation come from our clock and database.
 */
export interface ProxyIdentityOptions {
  trustedProxies: string[];
  header: string;
  /** Our issuing CA certificates, to tell "signed by us but unknown here" from "foreign". */
  issuers: () => x509.X509Certificate[];
}

export function trustedAddresses(entries: string[]): net.BlockList {
  const list = new net.BlockList();
  for (const entry of entries) {
    const [addr, bits] = entry.split('/') as [string, string | undefined];
    const type = net.isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(bits), type);
  }
  return list;
}

function isTrustedAddress(list: net.BlockList, address: string | undefined): boolean {
  // No address on a TCP socket means the peer is already gone (a reset before getpeername):
  // nobody to trust. Only the unix-socket listener is trusted without one (see accept below).
  if (address === undefined || address === '') return false;
  const v4mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  if (v4mapped) return list.check(v4mapped[1]!, 'ipv4');
  return list.check(address, net.isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

/**
 * The header's certificate as DER. nginx's $ssl_client_escaped_cert is URL-escaped PEM; HAProxy's
 * %[ssl_c_der,base64] is bare base64 DER; a PEM whose newlines a proxy turned into spaces or tabs
 * (nginx's deprecated $ssl_client_cert) is accepted too. Anything else is "no certificate".
 */
export function certificateFromHeader(value: string): Uint8Array | undefined {
  let text = value.trim();
  if (text === '' || text === '-') return undefined;
  if (text.includes('%')) {
    try {
      text = decodeURIComponent(text);
    } catch {
      return undefined;
    }
  }
  const pem = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(text);
  const b64 = (pem ? pem[1]! : text).replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return undefined;
  const der = Buffer.from(b64, 'base64');
  // A DER certificate is a SEQUENCE; anything else is noise.
  return der.length > 16 && der[0] === 0x30 ? new Uint8Array(der) : undefined;
}

export interface ProxyIdentity {
  /**
   * Decides, once, when the connection is accepted, whether its peer is a trusted proxy: a unix
   * socket peer always is (only processes the socket's file mode allows reach it), a TCP peer when
   * its address is in the list. Reading the address later, per request, was exploitable: after a
   * client's RST it reads undefined while the queued request is still parsed.
   */
  accept(socket: net.Socket, listener: 'unix' | 'tcp'): void;
  presented(req: FastifyRequest): PresentedCertificate;
}

/**
 * Header values already parsed: the proxy sends the same certificate on every request of a
 * connection and of every connection of that PC. Decoding the PEM and hashing the DER each time was
 * a visible share of a forward-auth check. Bounded; oldest out first.
 */
const PARSED_MAX = 2_000;

export function presentedFromProxy(opts: ProxyIdentityOptions): ProxyIdentity {
  const trusted = trustedAddresses(opts.trustedProxies);
  const decided = new WeakMap<object, boolean>();
  const parsed = new Map<string, { der: Uint8Array; fingerprint: string } | null>();
  const parse = (value: string) => {
    let hit = parsed.get(value);
    if (hit === undefined) {
      const der = certificateFromHeader(value);
      hit = der ? { der, fingerprint: fingerprintOf(der) } : null;
      if (parsed.size >= PARSED_MAX) parsed.delete(parsed.keys().next().value!);
      parsed.set(value, hit);
    }
    return hit;
  };
  return {
    accept(socket, listener) {
      decided.set(socket, listener === 'unix' || isTrustedAddress(trusted, socket.remoteAddress));
    },
    presented(req) {
      const raw = req.headers[opts.header];
      const value = Array.isArray(raw) ? raw[0] : raw;
      // A connection that was not seen being accepted is not trusted either.
      if (value === undefined || decided.get(req.raw.socket) !== true) return { der: undefined, chainVerified: false };
      const hit = parse(value);
      if (!hit) return { der: undefined, chainVerified: false };
      const { der, fingerprint } = hit;
      return {
        der,
        fingerprint,
        chainVerified: false,
        // Only asked when the DER is not in our database (the rare path): is it ours at all?
        verifyChain: () => signedByOneOf(der, opts.issuers()),
      };
    },
  };
}
