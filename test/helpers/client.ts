import https from 'node:https';

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
  json<T = Record<string, unknown>>(): T;
}

/**
 * A browser-like HTTPS client for integration tests: real TLS with a real client certificate
 * (PKCS#12), a cookie jar, form posts. Each request opens a new TLS connection, so swapping the
 * certificate takes effect at once (unlike a browser, which keeps its choice).
 */
export class TlsClient {
  readonly cookies = new Map<string, string>();
  constructor(
    readonly base: string,
    readonly ca: string,
    public pfx?: { file: Uint8Array; password: string },
  ) {}

  /** Sent with every request, like a browser's User-Agent. */
  defaultHeaders: Record<string, string> = {};

  /**
   * `raw` sends the bytes as they are (with the content type in `headers`): repeated fields, bad encodings.
   * `servername`: the name the server certificate is checked against when `host` is forged.
   */
  request(method: string, path: string, opts: { form?: Record<string, string>; json?: unknown; raw?: string | Buffer; headers?: Record<string, string>; servername?: string } = {}): Promise<Response> {
    const url = new URL(path, this.base);
    let payload: Buffer | undefined;
    const headers: Record<string, string> = { ...this.defaultHeaders, ...opts.headers };
    if (opts.form) {
      payload = Buffer.from(new URLSearchParams(opts.form).toString());
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else if (opts.raw !== undefined) {
      payload = Buffer.from(opts.raw);
    } else if (opts.json !== undefined) {
      payload = Buffer.from(JSON.stringify(opts.json));
      headers['content-type'] = 'application/json';
    }
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    return new Promise((resolve, reject) => {
      const req = https.request(
        url,
        { method, ca: this.ca, headers, agent: false, ...(opts.servername ? { servername: opts.servername } : {}), ...(this.pfx ? { pfx: Buffer.from(this.pfx.file), passphrase: this.pfx.password } : {}) },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            for (const c of ([] as string[]).concat(res.headers['set-cookie'] ?? [])) {
              const [pair, ...attrs] = c.split(';');
              const [k, v] = pair!.split('=');
              if (attrs.some((a) => /expires=Thu, 01 Jan 1970/i.test(a)) || v === '') this.cookies.delete(k!.trim());
              else this.cookies.set(k!.trim(), v!);
            }
            const body = Buffer.concat(chunks);
            const text = body.toString('utf8');
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, json: () => JSON.parse(text) });
          });
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  get(path: string) {
    return this.request('GET', path);
  }

  /** Follows redirects like a browser (303 → GET). */
  async follow(res: Response, max = 5): Promise<Response> {
    let r = res;
    for (let i = 0; i < max && r.status >= 300 && r.status < 400 && r.headers.location; i++) r = await this.get(String(r.headers.location));
    return r;
  }

  /** Submits the form on the page whose action is `action`, with its hidden fields (the CSRF token, the gateway's rd) as a browser does. */
  async submit(page: Response, action: string, fields: Record<string, string> = {}): Promise<Response> {
    const form = new RegExp(`<form[^>]*action="${action.replace(/[/]/g, '\\/')}"[\\s\\S]*?</form>`).exec(page.text);
    if (!form) throw new Error(`no form for ${action} on the page:\n${page.text.slice(0, 2000)}`);
    const hidden: Record<string, string> = { _csrf: '' };
    for (const m of form[0].matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) hidden[m[1]!] = unescapeHtml(m[2]!);
    return this.request('POST', action, { form: { ...hidden, ...fields } });
  }
}

const unescapeHtml = (s: string) => s.replace(/&(amp|lt|gt|quot|#39);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[e]!);
