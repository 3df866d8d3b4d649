/**
 * One thread of the load generator (see loadgen.ts). It drives `connections` TLS connections, each
 * sending GET requests one after another, and counts the responses that complete inside the
 * measurement window. HTTP/1.1 is spoken by hand over node:tls: the generator should spend as little
 * CPU per request as possible, because it shares the machine's cores with the server it measures.
 */
import tls from 'node:tls';
import { parentPort, workerData } from 'node:worker_threads';

export interface LoadWorkerData {
  host: string;
  port: number;
  path: string;
  /** PEM of the root that signed the server certificate. */
  ca: string;
  /** The client certificate as PKCS#12. */
  pfx: Uint8Array;
  passphrase: string;
  /** Extra request headers (a session cookie for the gateway). */
  headers?: Record<string, string>;
  connections: number;
  /** 'keepalive': requests one after another on each connection; 'handshake': a new TLS connection (full handshake) per request. */
  mode: 'keepalive' | 'handshake';
  /** Date.now() values: responses completed in [measureFrom, measureUntil) count; nothing is started after measureUntil. */
  measureFrom: number;
  measureUntil: number;
}

export interface LoadWorkerResult {
  count: number;
  /** Latency of every counted request in ms (one request on a kept-alive connection, or connect + request). */
  latencies: number[];
  errors: string[];
  bytes: number;
  /** What was negotiated, from one connection: protocol, cipher, key exchange, whether a session was resumed. */
  negotiated: { protocol: string | null; cipher: string; group: string | undefined; resumed: boolean } | undefined;
  resumedHandshakes: number;
}

const d = workerData as LoadWorkerData;
// One context for every connection: parsing the .p12 (3DES, PBKDF) per connection would cost the
// generator more than the handshake costs the server.
const context = tls.createSecureContext({ pfx: Buffer.from(d.pfx), passphrase: d.passphrase, ca: d.ca, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' });
const extra = Object.entries(d.headers ?? {})
  .map(([k, v]) => `\r\n${k}: ${v}`)
  .join('');
const request = (close: boolean) => Buffer.from(`GET ${d.path} HTTP/1.1\r\nHost: ${d.host}:${d.port}\r\nAccept: application/json\r\nUser-Agent: kenshin-bench${extra}${close ? '\r\nConnection: close' : ''}\r\n\r\n`);
const KEEP = request(false);
const CLOSE = request(true);

const result: LoadWorkerResult = { count: 0, latencies: [], errors: [], bytes: 0, negotiated: undefined, resumedHandshakes: 0 };

function connect(): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    // No `session` option: every connection is a full handshake, never a resumption.
    const socket = tls.connect({ host: d.host, port: d.port, servername: d.host === '127.0.0.1' ? undefined : d.host, secureContext: context });
    socket.setNoDelay(true);
    socket.once('secureConnect', () => {
      socket.off('error', reject);
      if (socket.isSessionReused()) result.resumedHandshakes++;
      if (!socket.authorized) return reject(new Error(`server certificate not trusted: ${String(socket.authorizationError)}`));
      if (!result.negotiated) {
        const c = socket.getCipher();
        const ek = socket.getEphemeralKeyInfo() as { name?: string } | null;
        result.negotiated = { protocol: socket.getProtocol(), cipher: c.standardName ?? c.name, group: ek?.name, resumed: socket.isSessionReused() };
      }
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Sends one request and resolves with the status when the whole response has arrived. */
function exchange(socket: tls.TLSSocket, payload: Buffer): Promise<{ status: number; close: boolean }> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let headerEnd = -1;
    let status = 0;
    let length = -1;
    let chunked = false;
    let close = false;
    const done = (r: { status: number; close: boolean }) => {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('end', onEnd);
      result.bytes += buf.length;
      resolve(r);
    };
    const onError = (e: Error) => {
      socket.off('data', onData);
      socket.off('end', onEnd);
      reject(e);
    };
    const onEnd = () => {
      if (headerEnd >= 0 && length < 0 && !chunked) return done({ status, close: true });
      onError(new Error('connection closed before the response was complete'));
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      if (headerEnd < 0) {
        headerEnd = buf.indexOf('\r\n\r\n');
        if (headerEnd < 0) return;
        const head = buf.subarray(0, headerEnd).toString('latin1');
        status = Number(head.slice(9, 12));
        const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        length = cl ? Number(cl[1]) : -1;
        chunked = /\r\ntransfer-encoding:\s*chunked/i.test(head);
        close = /\r\nconnection:\s*close/i.test(head);
      }
      const body = buf.length - headerEnd - 4;
      if (length >= 0 && body >= length) done({ status, close });
      else if (chunked && buf.subarray(buf.length - 5).toString('latin1') === '0\r\n\r\n') done({ status, close });
    };
    socket.on('data', onData);
    socket.once('error', onError);
    socket.once('end', onEnd);
    socket.write(payload);
  });
}

function record(t0: number, status: number) {
  if (status !== 200) throw new Error(`HTTP ${status}: the benchmark only counts successful requests`);
  const now = Date.now();
  if (now >= d.measureFrom && now < d.measureUntil) {
    result.count++;
    result.latencies.push(performance.now() - t0);
  }
}

async function keepAliveLoop(): Promise<void> {
  let socket: tls.TLSSocket | undefined;
  try {
    while (Date.now() < d.measureUntil) {
      socket ??= await connect();
      const t0 = performance.now();
      const r = await exchange(socket, KEEP);
      record(t0, r.status);
      // A server that ends keep-alive (e.g. after N requests) costs a reconnect, counted in the next request.
      if (r.close) {
        socket.destroy();
        socket = undefined;
      }
    }
  } finally {
    socket?.destroy();
  }
}

async function handshakeLoop(): Promise<void> {
  while (Date.now() < d.measureUntil) {
    const t0 = performance.now();
    const socket = await connect();
    try {
      const r = await exchange(socket, CLOSE);
      record(t0, r.status);
    } finally {
      socket.destroy();
    }
  }
}

const loop = d.mode === 'keepalive' ? keepAliveLoop : handshakeLoop;
const outcomes = await Promise.allSettled(Array.from({ length: d.connections }, () => loop()));
for (const o of outcomes) if (o.status === 'rejected') result.errors.push(String((o.reason as Error)?.message ?? o.reason));
parentPort!.postMessage(result);
