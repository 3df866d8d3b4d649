import { createHash } from 'node:crypto';
import type { NamedCrl } from '../certificates/crl-set.js';

/**
 * The published CRLs kept ready to send, as a static file server would: DER and PEM bytes, an
 * ETag and a Last-Modified, built once per CRL number. Before, every request decoded the stored
 * base64, re-encoded the PEM and counted the revoked certificates (70 ms per request at 100,000
 * entries). Each request asks the database only for the stored CRL's number (one indexed row):
 * a revocation publishes a new number at once, on whichever instance, and the next request here
 * serves it. The full staleness check (a day old, a revocation whose publication failed) runs at
 * most every `checkEveryMs`, and reads the bytes only when there is a new CRL: it used to load and
 * re-encode the whole CRL each time (≈ 0.2 s every 5 s in each process at 100,000 entries).
 */
export interface CrlFile {
  der: Buffer;
  pem: Buffer;
  etag: string;
  lastModified: string;
  /** nextUpdate as a Date: caches must not keep the file beyond it. */
  nextUpdate: Date;
}

export function crlFileOf(crl: NamedCrl): CrlFile {
  const der = Buffer.from(crl.crl.der);
  // The bytes' hash: the same CRL gives the same ETag on every instance.
  const tag = createHash('sha256').update(der).digest('base64url').slice(0, 22);
  return { der, pem: Buffer.from(crl.crl.pem), etag: `"${tag}"`, lastModified: new Date(crl.crl.thisUpdate).toUTCString(), nextUpdate: new Date(crl.crl.nextUpdate) };
}

export class CrlFiles {
  private readonly files = new Map<string, { file: CrlFile; checkedAt: number; number: number }>();
  private bundle: { file: CrlFile; key: string; checkedAt: number } | undefined;

  constructor(
    private readonly load: {
      /** The current CRL of one name (regenerated when stale), or undefined when no CA has it. */
      one(name: string): Promise<NamedCrl | undefined>;
      /** Every current CRL, root first. */
      all(): Promise<NamedCrl[]>;
      /** The stored CRL's number only. */
      number(name: string): Promise<number | undefined>;
      /** The stored CRL's number if it is still current (not stale), without its bytes. */
      currentNumber(name: string): Promise<number | undefined>;
      bundlePem(crls: NamedCrl[]): string;
    },
    private readonly now: () => number,
    private readonly checkEveryMs = 5000,
  ) {}

  private fresh(kept: { file: CrlFile; checkedAt: number } | undefined, now: number): boolean {
    return kept !== undefined && now - kept.checkedAt < this.checkEveryMs && now < kept.file.nextUpdate.getTime();
  }

  async get(name: string): Promise<CrlFile | undefined> {
    const now = this.now();
    const kept = this.files.get(name);
    if (this.fresh(kept, now) && (await this.load.number(name)) === kept!.number) return kept!.file;
    if (kept && now < kept.file.nextUpdate.getTime() && (await this.load.currentNumber(name)) === kept.number) {
      kept.checkedAt = now;
      return kept.file;
    }
    return this.once(`one:${name}`, async () => {
      const crl = await this.load.one(name);
      if (!crl) return undefined;
      // Copying and hashing the bytes (≈ 12 ms at 100,000 entries) in a turn of their own.
      await new Promise<void>((resolve) => setImmediate(resolve));
      const current = this.files.get(name);
      const file = current && current.number === crl.crl.number ? current.file : crlFileOf(crl);
      this.files.set(name, { file, checkedAt: now, number: crl.crl.number });
      return file;
    });
  }

  /**
   * One load at a time per CRL: the requests that find a new or stale CRL together wait for the
   * same one. Each had loaded it itself — at 100,000 entries 6.5 MB of base64 decoded, PEM and
   * SHA-256 each time, and for a stale CRL a publication, with its own number, per request.
   */
  private readonly loading = new Map<string, Promise<unknown>>();

  private once<T>(key: string, work: () => Promise<T>): Promise<T> {
    const running = this.loading.get(key) as Promise<T> | undefined;
    if (running) return running;
    const started = work().finally(() => this.loading.delete(key));
    this.loading.set(key, started);
    return started;
  }

  private async unchanged(key: string, asked: (name: string) => Promise<number | undefined>): Promise<boolean> {
    for (const part of key.split(',')) {
      const [name, number] = part.split(':');
      if ((await asked(name!)) !== Number(number)) return false;
    }
    return true;
  }

  /** Every CRL in one PEM file (nginx `ssl_crl`), rebuilt only when one of them changed. */
  async getBundle(): Promise<CrlFile> {
    const now = this.now();
    const kept = this.bundle;
    if (this.fresh(kept, now) && (await this.unchanged(kept!.key, (n) => this.load.number(n)))) return kept!.file;
    if (kept && now < kept.file.nextUpdate.getTime() && (await this.unchanged(kept.key, (n) => this.load.currentNumber(n)))) {
      kept.checkedAt = now;
      return kept.file;
    }
    return this.once('bundle', async () => {
      const crls = await this.load.all();
      const key = crls.map((c) => `${c.name}:${c.crl.number}`).join(',');
      let file = this.bundle?.key === key ? this.bundle.file : undefined;
      if (!file) {
        const pem = Buffer.from(this.load.bundlePem(crls));
        const newest = crls.reduce((a, c) => (c.crl.thisUpdate > a ? c.crl.thisUpdate : a), '');
        const soonest = crls.reduce((a, c) => Math.min(a, new Date(c.crl.nextUpdate).getTime()), Infinity);
        file = { der: Buffer.alloc(0), pem, etag: `"${createHash('sha256').update(pem).digest('base64url').slice(0, 22)}"`, lastModified: new Date(newest || now).toUTCString(), nextUpdate: new Date(soonest) };
      }
      this.bundle = { file, key, checkedAt: now };
      return file;
    });
  }
}
