import https from 'node:https';

/** One HTTPS request with a real TLS handshake, optionally presenting a PKCS#12 client certificate. */
export function httpsGet(url: string, opts: { ca: string; pfx?: Uint8Array; passphrase?: string; headers?: Record<string, string> }): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca: opts.ca, ...(opts.pfx ? { pfx: Buffer.from(opts.pfx), passphrase: opts.passphrase } : {}), headers: opts.headers ?? {}, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
  });
}
