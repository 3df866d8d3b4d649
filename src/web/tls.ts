import fs from 'node:fs';
import tls from 'node:tls';
import type { Config } from '../config.js';
import type { Runtime } from '../runtime.js';
import type { IssuingAuthority } from '../ca/authority.js';
import { ensureServerCertificate } from '../ca/server-certificate.js';
import { readPassphrase } from '../ca/keystore.js';
import { invalidInput } from '../errors.js';
import { loadTrustedCaPems } from '../ca/hierarchy.js';
import type { DataPaths } from '../config.js';

/**
 * What the HTTPS listener presents and asks for. Two separate things in production: the server's
 * own certificate usually comes from a public CA (browsers trust it without our root), while the
 * CA list sent in the client-certificate request names our CAs, so the browser offers only the
 * clinic's Kenshin certificate and not every certificate on the PC.
 */
export interface TlsMaterial {
  key: string;
  cert: string;
  /** PEM certificates of the CAs named in the CertificateRequest (and trusted for the chain check). */
  ca: string[];
  /** Where the server certificate came from, for the start-up line and `config check`. */
  source: string;
}

function readPem(file: string, setting: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw invalidInput(setting, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

export function splitPemCertificates(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** The client CAs: the configured bundle, else our root and every issuing CA generation (current and retired). */
export function clientCaPems(config: Config, paths: DataPaths): string[] {
  if (!config.clientCaFile) return loadTrustedCaPems(paths);
  const certs = splitPemCertificates(readPem(config.clientCaFile, 'KENSHIN_CLIENT_CA_FILE'));
  if (certs.length === 0) throw invalidInput('KENSHIN_CLIENT_CA_FILE', `${config.clientCaFile} holds no PEM certificate`);
  return certs;
}

/**
 * Loads (or, for the embedded default, issues) the server certificate and checks that it fits its
 * key before anything listens: a mismatched pair is refused with the setting named, not found out
 * at the first handshake.
 */
export async function loadTlsMaterial(config: Config, runtime: Runtime, authority: IssuingAuthority): Promise<TlsMaterial> {
  const ca = clientCaPems(config, runtime.paths);
  if (config.tlsCertFile && config.tlsKeyFile) {
    const cert = readPem(config.tlsCertFile, 'KENSHIN_TLS_CERT');
    const key = readPem(config.tlsKeyFile, 'KENSHIN_TLS_KEY');
    if (splitPemCertificates(cert).length === 0) throw invalidInput('KENSHIN_TLS_CERT', `${config.tlsCertFile} holds no PEM certificate`);
    try {
      tls.createSecureContext({ cert, key, ca });
    } catch (e) {
      const msg = (e as Error).message;
      throw invalidInput(/key values mismatch/i.test(msg) ? 'KENSHIN_TLS_KEY' : 'KENSHIN_TLS_CERT', `cannot use ${config.tlsCertFile} with ${config.tlsKeyFile}: ${msg}`);
    }
    return { cert, key, ca, source: config.tlsCertFile };
  }
  const generated = await ensureServerCertificate(authority, runtime.paths, config.serverNames, readPassphrase(config.caPassphrase, runtime.paths.caPassphraseFile), runtime.clock.now());
  return { cert: generated.certChainPem, key: generated.keyPem, ca, source: runtime.paths.serverCert };
}
