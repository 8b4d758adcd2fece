/**
 * The lifecycle every sidecar HTTP server shares (proxy listeners, admin, health): bind with a clear
 * error, graceful `close()` that lets in-flight requests finish, `destroy()` that does not wait, both
 * idempotent (STYLE.md, "Lifecycle").
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '@weft/api';
import { ListenError } from './proxy-errors';

export type RequestHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/**
 * An `http.Server` with connection bookkeeping. Once closing, a response still being served gets
 * `Connection: close` (or, if its headers already went out, its connection is ended after it), so
 * keep-alive clients cannot hold a draining server open.
 */
export class ManagedHttpServer {
  private readonly server: http.Server;
  /** Open connections and how many requests each is serving. */
  private readonly active = new Map<Socket, number>();
  /** Responses not yet finished (their headers may still be unsent). */
  private readonly responses = new Set<http.ServerResponse>();
  private closing = false;
  private closed: Promise<void> | undefined;

  constructor(
    private readonly what: string,
    handler: RequestHandler,
    private readonly log: Logger,
  ) {
    // No whole-request deadline: a proxied upload may legitimately stream for a long time.
    this.server = http.createServer({ requestTimeout: 0 });
    this.server.on('connection', (socket: Socket) => {
      if (this.closing) {
        socket.destroy();
        return;
      }
      this.active.set(socket, 0);
      socket.once('close', () => this.active.delete(socket));
    });
    // Registered before `handler` so a response written synchronously still sees `Connection: close`.
    this.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.track(req.socket, res));
    this.server.on('request', handler);
    this.server.on('error', (err) => this.log.warn('server error', { server: what, err }));
  }

  /** Binds `address:port` (0: any free port). Rejects with a `ListenError` naming the address. */
  listen(address: string, port: number): Promise<AddressInfo> {
    if (this.closing) return Promise.reject(new ListenError(this.what, address, port, new Error('server is closed')));
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        this.server.off('listening', onListening);
        reject(new ListenError(this.what, address, port, err));
      };
      const onListening = (): void => {
        this.server.off('error', onError);
        resolve(this.server.address() as AddressInfo);
      };
      this.server.once('error', onError);
      this.server.once('listening', onListening);
      this.server.listen({ host: address, port });
    });
  }

  /** The bound address, or `undefined` when not listening. */
  address(): AddressInfo | undefined {
    const a = this.server.address();
    return a && typeof a === 'object' ? a : undefined;
  }

  /** Whether `close()` or `destroy()` was called. */
  get isClosing(): boolean {
    return this.closing;
  }

  /**
   * Stops accepting at once (the port is released synchronously), closes idle connections, and
   * resolves when every in-flight request has finished and its connection closed. Idempotent: every
   * call returns the same promise.
   */
  close(): Promise<void> {
    if (!this.closed) {
      this.closing = true;
      this.closed = new Promise((resolve) => this.server.close(() => resolve()));
      // Node's close() already dropped idle keep-alive connections; busy ones end after their
      // response, which says `Connection: close` if its headers have not gone out yet.
      for (const res of this.responses) res.shouldKeepAlive = false;
    }
    return this.closed;
  }

  /** Closes every connection now, in flight or not. Idempotent; a pending `close()` then resolves. */
  destroy(): void {
    void this.close();
    for (const socket of this.active.keys()) socket.destroy();
    this.server.closeAllConnections();
  }

  private track(socket: Socket, res: http.ServerResponse): void {
    this.active.set(socket, (this.active.get(socket) ?? 0) + 1);
    this.responses.add(res);
    if (this.closing) res.shouldKeepAlive = false;
    let counted = true;
    const finished = (): void => {
      if (!counted) return;
      counted = false;
      this.responses.delete(res);
      const n = (this.active.get(socket) ?? 1) - 1;
      if (!this.active.has(socket)) return;
      this.active.set(socket, n);
      if (n === 0 && this.closing) socket.end();
    };
    res.once('finish', finished);
    res.once('close', finished);
  }
}
