import http from 'node:http';

export interface HealthAndMetrics {
  metrics(): Promise<string>;
  contentType: string;
  readiness(): Promise<{ ready: boolean }>;
}

/**
 * Metrics and the health checks on their own loopback port: Prometheus and the supervisor reach them
 * without a client certificate, and the port is not reachable from the clinics' side. One process
 * serves it (with several `serve` processes, the primary, for all of them: web/processes.ts).
 */
export async function serveHealthAndMetrics(listen: { host: string; port: number }, source: HealthAndMetrics): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET') return void res.writeHead(405).end();
    if (req.url === '/metrics') {
      source.metrics().then(
        (body) => res.writeHead(200, { 'Content-Type': source.contentType }).end(body),
        () => res.writeHead(500).end(),
      );
    } else if (req.url === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}');
    } else if (req.url === '/readyz') {
      void source.readiness().then((r) => res.writeHead(r.ready ? 200 : 503, { 'Content-Type': 'application/json' }).end(JSON.stringify(r)));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(listen.port, listen.host, resolve));
  return server;
}

export function metricsUrlOf(server: http.Server, listen: { host: string; port: number }): string {
  const a = server.address();
  return `http://${listen.host}:${typeof a === 'object' && a ? a.port : listen.port}/metrics`;
}
