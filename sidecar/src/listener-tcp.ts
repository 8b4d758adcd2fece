/**
 * A listener with TCP proxies only (no HTTP connection manager): in local mode, the per-upstream
 * port of an opaque Service port (docs/protocols.md). Every accepted connection goes through
 * listener-dispatch.ts (chains, PROXY header, detection if the chains need it) to forward-tcp.ts.
 *
 * Lifecycle as every Weft listener: `close()` stops accepting at once and resolves when every
 * open connection has ended (each ends on its own terms, or at the TCP proxy's idle timeout; the
 * sidecar's drain bound cuts what is left with `destroy()`); `destroy()` cuts them all now. Both
 * idempotent.
 */
import net, { type AddressInfo, type Socket } from 'node:net';
import type { Logger } from '@weft/api';
import type { ProxyConfig, TcpListener } from './config';
import { DEFAULT_DETECT_TIMEOUT_MS } from './detect-protocol';
import { ConnectionDispatcher, type DispatchDeps } from './listener-dispatch';
import { ListenError } from './proxy-errors';

export class TcpProxyListener {
  private served: TcpListener;
  private readonly server: net.Server;
  private readonly dispatcher: ConnectionDispatcher;
  private readonly sockets = new Set<Socket>();
  private readonly log: Logger;
  private closed: Promise<void> | undefined;

  constructor(spec: TcpListener, current: () => ProxyConfig, deps: Omit<DispatchDeps, 'current'>) {
    this.served = spec;
    this.log = deps.log.child({ module: 'listener-tcp', listener: spec.name });
    this.dispatcher = new ConnectionDispatcher(() => this.served, { ...deps, log: this.log, current });
    // allowHalfOpen: a client's FIN is forwarded as a FIN, not answered by closing (forward-tcp.ts).
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => {
      if (this.closed) return void socket.destroy();
      this.lastAcceptAt = performance.now();
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      // No HTTP connection manager here: a chain can only be a TCP proxy (config-from-xds.ts).
      this.dispatcher.dispatch(socket, (s) => s.destroy(), DEFAULT_DETECT_TIMEOUT_MS);
    });
  }

  get spec(): TcpListener {
    return this.served;
  }

  /** Binds `spec.address:spec.port`; rejects with a `ListenError` naming the listener and address. */
  listen(): Promise<void> {
    const { address, port } = this.served;
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(new ListenError(`listener ${this.served.name}`, address, port, err));
      this.server.once('error', onError);
      this.server.listen({ host: address, port }, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.log.warn('server error', { err }));
        const bound = this.server.address() as AddressInfo;
        this.log.info('listener STARTING -> LISTENING', { address: bound.address, port: bound.port, direction: this.served.direction, kind: 'tcp' });
        resolve();
      });
    });
  }

  address(): AddressInfo | undefined {
    const a = this.server.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  /** A new spec for the next connection; the address cannot change in place (the manager rebinds). */
  update(spec: TcpListener): void {
    if (spec.address !== this.served.address || spec.port !== this.served.port) {
      throw new Error(`listener ${spec.name}: ${this.served.address}:${this.served.port} -> ${spec.address}:${spec.port} needs a rebind, not update()`);
    }
    this.served = spec;
  }

  /** `performance.now()` of the last accepted connection (0: none). */
  lastAcceptAt = 0;

  /** Nothing to do for TCP: a proxied connection carries no requests to end it between. */
  softDrain(): void {}

  /** Stops accepting now; resolves when every open connection has closed. Idempotent. */
  close(): Promise<void> {
    if (!this.closed) {
      this.log.info('listener LISTENING -> DRAINING', { open: this.sockets.size });
      this.closed = new Promise((resolve) => {
        if (!this.server.listening) return resolve();
        this.server.close(() => resolve());
      });
    }
    return this.closed;
  }

  /** Cuts every connection, both sides, now. Idempotent. */
  destroy(): void {
    void this.close();
    for (const s of this.sockets) s.destroy();
    this.dispatcher.destroy();
  }
}
