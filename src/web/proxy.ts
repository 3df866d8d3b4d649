import net from 'node:net';
import type { FastifyRequest } from 'fastify';
import { x509 } from '../ca/x509.js';
import type { PresentedCertificate } from '../identity/peer.js';
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

function isTrusted(list: net.BlockList, address: string | undefined): boolean {
  // A unix socket has no peer address: only processes allowed by the socket's file mode reach it.
  if (address === undefined || address === '') return true;
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

export function presentedFromProxy(opts: ProxyIdentityOptions): (req: FastifyRequest) => PresentedCertificate {
  const trusted = trustedAddresses(opts.trustedProxies);
  return (req) => {
    const raw = req.headers[opts.header];
    const value = Array.isArray(raw) ? raw[0] : raw;
    if (value === undefined || !isTrusted(trusted, req.raw.socket.remoteAddress)) return { der: undefined, chainVerified: false };
    const der = certificateFromHeader(value);
    if (!der) return { der: undefined, chainVerified: false };
    return {
      der,
      chainVerified: false,
      // Only asked when the DER is not in our database (the rare path): is it ours at all?
      verifyChain: () => signedByOneOf(der, opts.issuers()),
    };
  };
}
