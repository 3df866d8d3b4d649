/**
 * A second peer for the serving benchmarks: Node's own `https` server, one process per core
 * (node:cluster, like `kenshin serve`), answering every request with one file's bytes and asking
 * for a client certificate as Kenshin does. Nothing else: no routing, no hooks, no logging. It
 * tells apart what Node's TLS and HTTP cost (the floor for any Node server on this machine) from
 * what Kenshin adds on top.
 *
 *   node --import tsx bench/bare-node-server.ts CERT KEY CLIENT_CA BODY PORT PROCESSES CONTENT_TYPE
 */
import cluster from 'node:cluster';
import fs from 'node:fs';
import https from 'node:https';

const [certFile, keyFile, caFile, bodyFile, port, processes, contentType] = process.argv.slice(2);
if (!certFile || !keyFile || !caFile || !bodyFile || !port || !processes || !contentType) {
  console.error('usage: bare-node-server.ts CERT KEY CLIENT_CA BODY PORT PROCESSES CONTENT_TYPE');
  process.exit(2);
}

if (cluster.isPrimary && Number(processes) > 1) {
  for (let i = 0; i < Number(processes); i++) cluster.fork();
  // The bench stops the primary; the workers go with it.
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.kill();
    process.exit(0);
  });
} else {
  const body = fs.readFileSync(bodyFile);
  const server = https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), ca: fs.readFileSync(caFile), requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.3' }, (_req, res) => {
    res.writeHead(200, { 'content-type': contentType, 'content-length': body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 60_000;
  // The bench polls until it answers.
  server.listen(Number(port), '127.0.0.1');
}
