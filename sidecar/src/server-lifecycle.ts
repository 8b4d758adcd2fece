/**
 * The lifecycle every sidecar HTTP server shares (proxy listeners, admin, health): bind with a clear
 * error, graceful `close()` that lets in-flight requests finish, `destroy()` that does not wait, both
 * idempotent (STYLE.md, "Lifecycle").
 */
import http from 'node:http';
import type { IncomingHttpHeaders } from 'node:http2';
import net, { type AddressInfo, type Socket } from 'node:net';
import { DEFAULT_DETECT_TIMEOUT_MS, detectProtocol, type DetectedProtocol } from './detect-protocol';
import { H2Server } from './h2-limits';
import type { H2ServerStream } from './h2-streams';
import type { Logger } from '@weft/api';
import { applyServerLimits, resolveHttpLimits, serverOptions, type HttpLimits } from './http-limits';
import { clientErrorToProxyError, rawErrorResponse, recordRejection, respondAndClose } from './http-strict';
import { ListenError, MethodNotAllowedError, RequestTimeoutError } from './proxy-errors';
import type { Http1Request, Http1Response } from './http1-message';
import { Http1Server } from './server-http1';
import { answerRefusal } from './http-refusal';

export type RequestHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
/** An HTTP/1.1 `Upgrade` request: the socket is the handler's from now on (Node's `upgrade` event). */
export type UpgradeHandler = (req: http.IncomingMessage, socket: Socket, head: Buffer) => void;

export interface ManagedHttpServerOptions {
  /** Size limits and timeouts; unset fields take `DEFAULT_HTTP_LIMITS`. */
  readonly limits?: Partial<HttpLimits>;
  /** Requests with `Connection: upgrade` and `Upgrade`; without it they are served as plain requests. */
  readonly onUpgrade?: UpgradeHandler;
  /**
   * HTTP/2 streams. When set, each accepted connection runs protocol detection first
   * (detect-protocol.ts): the HTTP/2 preface goes to an h2c server whose streams come here, anything
   * else to the HTTP/1 server. Detection is bounded by `DEFAULT_DETECT_TIMEOUT_MS`, or the idle or
   * headers timeout when shorter.
   */
  readonly onHttp2Stream?: Http2StreamHandler;
  /**
   * With `onHttp2Stream`: HTTP/1.1 connections are served by the lean server (server-http1.ts)
   * with these handlers instead of by `http.Server` (the constructor's `handler` and `onUpgrade`
   * then go unused). The proxy listeners' data path; docs/performance.md says why.
   */
  readonly http1?: {
    readonly onRequest: (req: Http1Request, res: Http1Response) => void;
    readonly onUpgrade: (req: Http1Request, socket: Socket, head: Buffer) => void;
  };
  /**
   * With `onHttp2Stream`: sorts each accepted connection onto a filter chain first
   * (listener-dispatch.ts), which may hand it back for HTTP or proxy it as TCP. Without it, every
   * connection is HTTP. `destroy()` is called with the server's.
   */
  readonly dispatch?: ConnectionDispatch;
}

/** What `ManagedHttpServer` needs of a connection dispatcher (listener-dispatch.ts). */
export interface ConnectionDispatch {
  dispatch(socket: Socket, serveHttp: (socket: Socket, protocol: DetectedProtocol) => void, httpDetectMs: number): void;
  destroy(): void;
}

/** One HTTP/2 stream (h2-streams.ts) and its request headers. */
export type Http2StreamHandler = (stream: H2ServerStream, headers: IncomingHttpHeaders) => void;

/**
 * An `http.Server` with connection bookkeeping. Once closing, a response still being served gets
 * `Connection: close` (or, if its headers already went out, its connection is ended after it), so
 * keep-alive clients cannot hold a draining server open.
 *
 * Strict by construction (docs/http-safety.md): llhttp in strict mode, the limits of `HttpLimits`,
 * and one `clientError` handler that answers what the parser refused (400, 408, 431, 505) with
 * `Connection: close`, counts it and logs it at debug.
 */
export class ManagedHttpServer {
  private readonly server: http.Server;
  /** Open connections and how many requests each is serving. */
  private readonly active = new Map<Socket, number>();
  /** Responses not yet finished (their headers may still be unsent). */
  private readonly responses = new Set<http.ServerResponse>();
  /** Per connection, the response most recently begun (kept once finished, until the connection closes). */
  private readonly current = new Map<Socket, http.ServerResponse>();
  private closing = false;
  private closed: Promise<void> | undefined;
  /** With HTTP/2: the listening socket (detection first), the HTTP/2 server and every accepted socket. */
  private readonly front: net.Server | undefined;
  private h2: H2Server | undefined;
  private readonly accepted = new Set<Socket>();
  /** With `http1`: the lean HTTP/1.1 server behind detection. */
  private readonly lean: Http1Server | undefined;
  private readonly dispatcher: ConnectionDispatch | undefined;
  /** The limits in force (defaults filled in). */
  readonly limits: HttpLimits;

  constructor(
    private readonly what: string,
    handler: RequestHandler,
    private readonly log: Logger,
    options: ManagedHttpServerOptions = {},
  ) {
    this.limits = resolveHttpLimits(options.limits);
    this.server = http.createServer(serverOptions(this.limits));
    applyServerLimits(this.server, this.limits);
    this.server.on('connection', (socket: Socket) => {
      if (this.closing) {
        socket.destroy();
        return;
      }
      this.active.set(socket, 0);
      socket.once('close', () => {
        this.active.delete(socket);
        this.current.delete(socket);
      });
    });
    // Registered before `handler` so a response written synchronously still sees `Connection: close`.
    this.server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => this.track(req.socket, res));
    this.server.on('request', handler);
    this.server.on('error', (err) => this.log.warn('server error', { server: what, err }));
    this.server.on('clientError', (err: Error, socket: Socket) => this.onClientError(err, socket));
    const onUpgrade = options.onUpgrade;
    if (onUpgrade) this.server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => onUpgrade(req, socket, head));
    // CONNECT (a TCP tunnel to any host) is not proxied: answered 405 and counted, never left hanging.
    this.server.on('connect', (req: http.IncomingMessage, socket: Socket) => {
      socket.on('error', () => undefined);
      const error = new MethodNotAllowedError('connect-method', 'CONNECT is not supported');
      recordRejection(this.log, error, { server: what, client: socket.remoteAddress });
      socket.end(rawErrorResponse(error), () => socket.destroy());
      req.resume();
    });
    this.server.on('timeout', (socket: Socket) => this.onIdleTimeout(socket));
    const onStream = options.onHttp2Stream;
    if (onStream) {
      // Abuse limits, header limits and the idle timeout on HTTP/2: h2-limits.ts.
      const h2 = (this.h2 = new H2Server(this.limits, onStream, { log, what }));
      const limits = [DEFAULT_DETECT_TIMEOUT_MS, this.limits.idleTimeoutMs, this.limits.headersTimeoutMs].filter((ms) => ms > 0);
      const detectMs = Math.min(...limits);
      const lean = options.http1 ? new Http1Server({ what, log, limits: this.limits, onRequest: options.http1.onRequest, onUpgrade: options.http1.onUpgrade }) : undefined;
      this.lean = lean;
      const serveHttp = (socket: Socket, protocol: DetectedProtocol): void => {
        if (this.closing && protocol === 'http1') return void socket.destroy();
        if (protocol === 'http2') {
          socket.allowHalfOpen = false; // the peer's FIN ends the connection
          return void h2.accept(socket);
        }
        if (lean) return void lean.accept(socket);
        this.server.emit('connection', socket);
        // Detection paused the socket; the HTTP/1 server reads the put-back bytes once it flows.
        socket.resume();
      };
      const dispatcher = (this.dispatcher = options.dispatch);
      // With a dispatcher a connection may be TCP-proxied, where a client's FIN must be forwarded,
      // not answered by closing (the HTTP servers manage `end` themselves either way).
      this.front = net.createServer({ noDelay: true, allowHalfOpen: dispatcher !== undefined }, (socket) => {
        if (this.closing) return void socket.destroy();
        this.lastAcceptAt = performance.now();
        this.accepted.add(socket);
        socket.once('close', () => this.accepted.delete(socket));
        if (dispatcher) dispatcher.dispatch(socket, serveHttp, detectMs);
        else detectProtocol(socket, detectMs, (protocol) => serveHttp(socket, protocol));
      });
    }
  }

  /** Binds `address:port` (0: any free port). Rejects with a `ListenError` naming the address. */
  listen(address: string, port: number): Promise<AddressInfo> {
    if (this.closing) return Promise.reject(new ListenError(this.what, address, port, new Error('server is closed')));
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        (this.front ?? this.server).off('listening', onListening);
        reject(new ListenError(this.what, address, port, err));
      };
      const onListening = (): void => {
        (this.front ?? this.server).off('error', onError);
        // Node starts the HTTP/1 server's headers/request timeout checks on its `listening` event;
        // behind detection it never listens itself, so it is told.
        if (this.front) this.server.emit('listening');
        resolve((this.front ?? this.server).address() as AddressInfo);
      };
      const listening = this.front ?? this.server;
      listening.once('error', onError);
      listening.once('listening', onListening);
      listening.listen({ host: address, port });
    });
  }

  /** The bound address, or `undefined` when not listening. */
  address(): AddressInfo | undefined {
    const a = (this.front ?? this.server).address();
    return a && typeof a === 'object' ? a : undefined;
  }

  /** `performance.now()` of the last accepted connection (proxy listeners; 0: none yet). */
  lastAcceptAt = 0;

  /**
   * Keeps accepting, but HTTP/1 responses say `Connection: close` and idle HTTP/1 connections end,
   * so clients reconnect for each request (Http1Server.softDrain). Proxy listeners only.
   */
  softDrain(): void {
    this.lean?.softDrain();
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
      const front = this.front;
      if (front) {
        // The front socket owns every connection, HTTP/1 and HTTP/2: its close waits for them all.
        // The HTTP/1 server is closed too, for its idle keep-alive connections (it never listened).
        this.closed = new Promise((resolve) => front.close(() => resolve()));
        this.server.close(() => undefined);
        this.lean?.close();
        this.h2?.close();
      } else {
        this.closed = new Promise((resolve) => this.server.close(() => resolve()));
      }
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
    this.lean?.destroy();
    this.h2?.destroy();
    for (const socket of this.accepted) socket.destroy();
    this.dispatcher?.destroy();
  }

  /**
   * llhttp refused the bytes on `socket` (or a headers/request timeout fired). The connection cannot
   * be trusted past this point: answer if no response owns the socket yet, then close it.
   */
  private onClientError(err: Error, socket: Socket): void {
    const error = clientErrorToProxyError(err, this.limits);
    if (!error) {
      // A transport failure (reset, broken pipe): no one to answer, nothing to count.
      socket.destroy();
      return;
    }
    const res = this.current.get(socket);
    if (res && res.writableEnded && !res.shouldKeepAlive) {
      // A response that closes the connection (typically a rejection, already counted) is written:
      // what the parser choked on is the rest of that request. Flush, close, count nothing more.
      this.log.debug('unparsed bytes after a closing response', { server: this.what, code: error.code, reason: error.reason });
      if (socket.writableFinished) socket.destroy();
      else socket.end(() => socket.destroy());
      return;
    }
    recordRejection(this.log, error, { server: this.what, client: socket.remoteAddress });
    answerRefusal(error, socket, res && !res.writableEnded ? res : undefined);
  }

  /**
   * No byte moved on `socket` for `idleTimeoutMs`. A request still arriving (a body trickled or
   * stalled) is answered 408 and counted; otherwise the connection is just closed, which aborts
   * any upstream request still waiting.
   */
  private onIdleTimeout(socket: Socket): void {
    const res = this.current.get(socket);
    if (res && !res.writableEnded && !res.headersSent && !res.req.complete) {
      const error = new RequestTimeoutError('idle-timeout', 'no data received in time');
      recordRejection(this.log, error, { server: this.what, client: socket.remoteAddress });
      respondAndClose(res, error);
      return;
    }
    socket.destroy();
  }

  private track(socket: Socket, res: http.ServerResponse): void {
    this.active.set(socket, (this.active.get(socket) ?? 0) + 1);
    this.responses.add(res);
    this.current.set(socket, res);
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
