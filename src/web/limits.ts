import type net from 'node:net';
import type { ConnectionLimits } from '../config.js';

/**
 * What a slow or idle client may hold. Without these a request that declares a body and never
 * finishes it was held open for minutes, and so were idle connections after the handshake: 1,500 of
 * them cost 1,500 file descriptors and 49 MB. Node enforces the request and header timeouts on a
 * periodic sweep (connectionsCheckingInterval), set here to a second so they bite when they say.
 */
export function serverTimeoutOptions(limits: ConnectionLimits) {
  return {
    fastify: {
      requestTimeout: limits.requestTimeoutSeconds * 1000,
      keepAliveTimeout: limits.keepAliveTimeoutSeconds * 1000,
      // Socket inactivity in either direction, from accept on.
      connectionTimeout: limits.idleTimeoutSeconds * 1000,
    },
    server: {
      headersTimeout: limits.headersTimeoutSeconds * 1000,
      connectionsCheckingInterval: 1000,
      // A TLS handshake that does not finish (a client that connects and sends nothing).
      handshakeTimeout: Math.min(10, limits.idleTimeoutSeconds) * 1000,
    },
  };
}

/**
 * Caps open connections: all of them (server.maxConnections, applied by Node at accept), and in
 * direct mode those from one address, so one client cannot take every slot from the others.
 * Behind a proxy every connection comes from the proxy, which does its own per-client limiting.
 */
export function capConnections(server: net.Server, limits: ConnectionLimits, perAddress: boolean): void {
  server.maxConnections = limits.maxConnections;
  if (!perAddress || limits.maxConnectionsPerAddress === 0) return;
  const open = new Map<string, number>();
  server.on('connection', (socket: net.Socket) => {
    const address = socket.remoteAddress;
    if (address === undefined) return void socket.destroy();
    const n = (open.get(address) ?? 0) + 1;
    if (n > limits.maxConnectionsPerAddress) return void socket.destroy();
    open.set(address, n);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left <= 0) open.delete(address);
      else open.set(address, left);
    });
  });
}
