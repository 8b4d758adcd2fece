/**
 * A lean HTTP/1.1 client for one upstream endpoint: a pool of keep-alive sockets, each with its own
 * llhttp response parser (the one inside Node, `_http_common`'s `HTTPParser`), and one request
 * head written in a single `write`. It replaces `http.Agent` + `http.ClientRequest`, whose
 * per-request objects, listeners and `nextTick`s cost more than the proxying itself
 * (docs/performance.md).
 *
 * Contract of an exchange: the caller writes the request head (a complete string, built by
 * headers-http.ts) and body through the `Http1Exchange`; the response arrives through the
 * `ExchangeHandler` callbacks, synchronously from socket events: `onResponse` once, `onData` per
 * body chunk, then exactly one of `onEnd` or `onError`. Interim 1xx responses are skipped. Nothing
 * is called after `abort()`.
 */
import type { Socket } from 'node:net';
import type { UpstreamTls } from './config';
import type { TlsContexts } from './tls-contexts';
import { connectUpstream } from './tls-originate';
import { createRequire } from 'node:module';

const nodeRequire = createRequire(__filename);
// Node's own llhttp binding, the parser behind `node:http`. Not a documented API, but stable since
// Node 12 and used by the http module itself; the sidecar pins its Node version (package.json).
interface LlhttpParser {
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void;
  execute(data: Buffer): number | Error;
  finish(): undefined | Error;
  close(): void;
  [key: number]: unknown;
}
const { HTTPParser } = loadParser();
export { HTTPParser, type LlhttpParser };

interface ParserBinding {
  HTTPParser: {
    new (): LlhttpParser;
    readonly REQUEST: number;
    readonly RESPONSE: number;
    readonly kOnHeaders: number;
    readonly kOnHeadersComplete: number;
    readonly kOnBody: number;
    readonly kOnMessageComplete: number;
  };
}

/** Node's parser binding, checked once: a Node without it fails at start-up with a clear message. */
function loadParser(): ParserBinding {
  const binding = nodeRequire('_http_common') as Partial<ParserBinding>;
  const P = binding.HTTPParser;
  if (typeof P !== 'function' || typeof P.REQUEST !== 'number' || typeof P.kOnHeadersComplete !== 'number' || typeof P.prototype?.execute !== 'function') {
    throw new Error(`this Node.js (${process.version}) does not expose the llhttp parser the sidecar's HTTP/1.1 path uses (_http_common.HTTPParser); run it on Node 20 or 22`);
  }
  return binding as ParserBinding;
}

export interface ExchangeHandler {
  /** The socket is connected (at once for a reused one). */
  onConnect?(reused: boolean): void;
  /** The final response head; `rawHeaders` is `[name, value, ...]` as received. */
  onResponse(status: number, statusMessage: string, rawHeaders: readonly string[]): void;
  /** A response body chunk (the socket is paused while `pause()` is in effect). */
  onData(chunk: Buffer): void;
  /** The response is complete; the socket went back to the pool (or closed). */
  onEnd(): void;
  /**
   * The exchange failed. `connected`: the connection had been established (a reset, not a
   * connect failure); `reused`: it was a pooled connection; `responded`: the response head had
   * arrived. The socket is destroyed.
   */
  onError(err: NodeJS.ErrnoException, info: { readonly connected: boolean; readonly reused: boolean; readonly responded: boolean }): void;
}

export interface Http1EndpointOptions {
  /** Requests per connection before it is closed; 0: unlimited. */
  readonly maxRequestsPerConnection?: number;
  /** Most idle connections kept (default 256). */
  readonly maxIdle?: number;
  /** An idle connection is closed after this long (default 4000 ms). */
  readonly idleTimeoutMs?: number;
  /** Largest response head accepted (default Node's 16 KiB). */
  readonly maxHeaderSize?: number;
  /** Mesh mTLS to this endpoint, with the contexts to make it (tls-originate.ts). */
  readonly tls?: UpstreamTls;
  readonly contexts?: TlsContexts;
}

const RESPONSE = HTTPParser.RESPONSE;
const kOnHeaders = HTTPParser.kOnHeaders;
const kOnHeadersComplete = HTTPParser.kOnHeadersComplete;
const kOnBody = HTTPParser.kOnBody;
const kOnMessageComplete = HTTPParser.kOnMessageComplete;

/**
 * One read buffer for every plaintext upstream connection (`net.connect`'s `onread`): no buffer is
 * allocated per read, and reads skip the `Readable` machinery. Safe because a read is consumed
 * before the next one can arrive: the parser runs synchronously over it, and what it hands on
 * (header strings, body chunks) are copies, never views of the buffer.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** One upstream connection and its parser; `exchange` is the request it currently carries. */
class Conn {
  readonly parser: LlhttpParser = new HTTPParser();
  exchange: Http1Exchange | undefined;
  served = 0;
  idleTimer: NodeJS.Timeout | undefined;
  /** Header pairs delivered before the head was complete (more than 32 of them). */
  partial: string[] | undefined;

  /**
   * `sharedReads`: the socket reads into `READ_BUFFER` (it was made with `onread`, and calls
   * `read`); otherwise its `'data'` events are read here.
   */
  constructor(
    readonly socket: Socket,
    readonly endpoint: Http1Endpoint,
    maxHeaderSize: number,
    sharedReads: boolean,
  ) {
    const parser = this.parser;
    parser.initialize(RESPONSE, {}, maxHeaderSize, 0);
    parser[kOnHeaders] = (headers: string[]) => {
      (this.partial ??= []).push(...headers);
    };
    parser[kOnHeadersComplete] = (_maj: number, _min: number, headers: string[] | undefined, _m: unknown, _u: unknown, status: number, message: string, _upg: boolean, keepAlive: boolean) => {
      const raw = headers ?? this.partial ?? [];
      this.partial = undefined;
      return this.exchange ? this.exchange.headersComplete(status, message, raw, keepAlive) : 0;
    };
    // Body chunks are llhttp's copies (Node's parser copies them out of the buffer it parses), so a
    // handler may keep one (a write the socket buffers) whatever buffer the read went into.
    parser[kOnBody] = (chunk: Buffer) => this.exchange?.body(chunk);
    parser[kOnMessageComplete] = () => this.exchange?.messageComplete();
    if (!sharedReads) socket.on('data', (data: Buffer) => this.read(data));
    socket.on('end', () => {
      const ex = this.exchange;
      if (!ex) {
        // The upstream closed an idle connection: out of the pool now, before anyone picks it.
        this.endpoint.forget(this);
        socket.destroy();
        return;
      }
      // A response delimited by the close of the connection ends here.
      const r = parser.finish();
      if (r) ex.fail(r as NodeJS.ErrnoException);
      else if (this.exchange === ex) ex.fail(socketHangUp());
    });
    socket.on('error', (err: NodeJS.ErrnoException) => this.exchange?.fail(err));
    socket.on('close', () => {
      this.endpoint.forget(this);
      this.exchange?.fail(socketHangUp());
    });
  }

  /** Bytes from the upstream. */
  read(data: Buffer): void {
    const ex = this.exchange;
    if (!ex) {
      // Bytes on an idle connection: nothing asked for them; the connection is out of step.
      this.socket.destroy();
      return;
    }
    const r = this.parser.execute(data);
    if (typeof r !== 'number') ex.fail(r as NodeJS.ErrnoException);
  }
}

function socketHangUp(): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error('socket hang up');
  err.code = 'ECONNRESET';
  return err;
}

/**
 * One request/response on one connection. Body writes before the connection is up are queued (in
 * the socket's own buffer: `net.Socket` accepts writes while connecting).
 */
export class Http1Exchange {
  private conn: Conn | undefined;
  private connected = false;
  private responded = false;
  private over = false;
  private keepAlive = false;
  private readonly chunked: boolean;
  /** True once the whole request (head and body) was handed to the socket. */
  requestFinished = false;
  /** True when the exchange runs on a pooled connection that served earlier requests. */
  readonly reused: boolean;

  constructor(
    private readonly endpoint: Http1Endpoint,
    conn: Conn,
    reused: boolean,
    head: string,
    private readonly handler: ExchangeHandler,
    /** The request has no body to frame (HEAD answers carry none either: `skipBody`). */
    private readonly skipBody: boolean,
    framing: 'none' | 'length' | 'chunked',
  ) {
    this.conn = conn;
    this.reused = reused;
    this.chunked = framing === 'chunked';
    conn.exchange = this;
    conn.socket.write(head, 'latin1');
    if (framing === 'none') this.requestFinished = true;
  }

  /** The socket, for backpressure (`pause`/`resume`) and socket-level options. */
  get socket(): Socket | undefined {
    return this.conn?.socket;
  }

  /** Writes a request body chunk; returns false when the socket's buffer is full (wait for 'drain'). */
  write(chunk: Buffer): boolean {
    const s = this.conn?.socket;
    if (!s || this.over || chunk.length === 0) return true;
    if (!this.chunked) return s.write(chunk);
    s.cork();
    s.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    s.write(chunk);
    const ok = s.write('\r\n', 'latin1');
    s.uncork();
    return ok;
  }

  /** Ends the request body. */
  end(): void {
    if (this.requestFinished || this.over) return;
    this.requestFinished = true;
    if (this.chunked) this.conn?.socket.write('0\r\n\r\n', 'latin1');
  }

  /** Stops the exchange and destroys its connection; no callback follows. Idempotent. */
  abort(): void {
    if (this.over) return;
    this.over = true;
    const conn = this.conn;
    this.conn = undefined;
    if (conn) {
      conn.exchange = undefined;
      conn.socket.destroy();
    }
  }

  /** @internal the connection is established. */
  connect(): void {
    this.connected = true;
    this.handler.onConnect?.(this.reused);
  }

  /** @internal */
  headersComplete(status: number, message: string, raw: string[], keepAlive: boolean): number {
    if (this.over) return 0;
    // Interim responses (100 Continue, 103 Early Hints) are not relayed: skip, wait for the final one.
    if (status < 200) return 1;
    this.responded = true;
    this.keepAlive = keepAlive;
    this.handler.onResponse(status, message, raw);
    // 1: the response has no body (an answer to HEAD); llhttp then completes the message now.
    return this.skipBody ? 1 : 0;
  }

  /** @internal */
  body(chunk: Buffer): void {
    if (!this.over) this.handler.onData(chunk);
  }

  /** @internal */
  messageComplete(): void {
    if (this.over || !this.responded) return;
    this.over = true;
    const conn = this.conn!;
    this.conn = undefined;
    conn.exchange = undefined;
    // A connection is reused only once the request is fully sent, too: a response that came
    // early (say a 413 while the body streams) leaves the request half written on the wire.
    this.endpoint.release(conn, this.keepAlive && this.requestFinished);
    this.handler.onEnd();
  }

  /** @internal */
  fail(err: NodeJS.ErrnoException): void {
    if (this.over) return;
    this.abort();
    this.handler.onError(err, { connected: this.connected, reused: this.reused, responded: this.responded });
  }
}

/**
 * The connections to one endpoint (`address:port`). `request` takes the most recently used idle
 * connection (LIFO, so surplus ones age out) or opens a new one; there is no cap here — the
 * cluster's circuit breakers (pool-limits.ts) bound requests in flight.
 */
export class Http1Endpoint {
  private readonly idle: Conn[] = [];
  private readonly busy = new Set<Conn>();
  private pooling = true;
  private readonly maxRequests: number;
  private readonly maxIdle: number;
  private readonly idleTimeoutMs: number;
  private readonly maxHeaderSize: number;

  constructor(
    readonly address: string,
    readonly port: number,
    options: Http1EndpointOptions = {},
  ) {
    this.maxRequests = options.maxRequestsPerConnection ?? 0;
    this.maxIdle = options.maxIdle ?? 256;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 4000;
    this.maxHeaderSize = options.maxHeaderSize ?? 16 * 1024;
    this.tls = options.tls;
    this.contexts = options.contexts;
  }

  /** Mesh mTLS to this endpoint (auto mTLS); absent: plaintext. */
  readonly tls: UpstreamTls | undefined;
  private readonly contexts: TlsContexts | undefined;

  /**
   * A new connection outside the pool (an `Upgrade` tunnel takes one), made as pooled ones are:
   * mesh mTLS when this endpoint has it. `secure`: wait for `secureConnect` rather than `connect`.
   */
  openConnection(): { readonly socket: Socket; readonly secure: boolean } {
    return connectUpstream(this, this.contexts, 'http/1.1', { noDelay: true });
  }

  /** No longer pooling (`retire`/`destroy`): its pool is gone from the `UpstreamPool`. */
  get retired(): boolean {
    return !this.pooling;
  }

  /** Connections open now (idle and busy). */
  get connections(): number {
    return this.idle.length + this.busy.size;
  }

  /**
   * Sends `head` (the whole request head, ending in an empty line) on a pooled or new connection.
   * `framing` says how the body that follows is framed: `none` (no body), `length` (the head has a
   * Content-Length; write exactly that), `chunked` (the head has `Transfer-Encoding: chunked`; the
   * exchange encodes the chunks). `skipBody`: the response has no body whatever its head says
   * (a HEAD request). `connectTimeoutMs` > 0 bounds a new connection's connect.
   */
  request(head: string, handler: ExchangeHandler, framing: 'none' | 'length' | 'chunked', skipBody: boolean, connectTimeoutMs: number): Http1Exchange {
    let pooled = this.idle.pop();
    // A connection the upstream is closing may not have been noticed yet; never write to one.
    while (pooled && (!pooled.socket.writable || pooled.socket.readableEnded)) {
      pooled.socket.destroy();
      pooled = this.idle.pop();
    }
    if (pooled) {
      // The idle timer stays armed: when it fires on a busy connection it does nothing (below).
      pooled.served++;
      this.busy.add(pooled);
      const ex = new Http1Exchange(this, pooled, true, head, handler, skipBody, framing);
      ex.connect();
      return ex;
    }
    // Mesh mTLS when the cluster resolved it for this endpoint (tls-originate.ts), else plaintext.
    // Plaintext connections read into the shared buffer (`onread`; TLS ones ignore it).
    let conn: Conn | undefined;
    const onread = {
      buffer: READ_BUFFER,
      callback: (n: number): boolean => {
        conn?.read(READ_BUFFER.subarray(0, n));
        return true; // keep reading (backpressure pauses the socket itself)
      },
    };
    const { socket, secure } = connectUpstream(this, this.contexts, 'http/1.1', { noDelay: true, onread });
    conn = new Conn(socket, this, this.maxHeaderSize, !secure);
    conn.served = 1;
    this.busy.add(conn);
    const ex = new Http1Exchange(this, conn, false, head, handler, skipBody, framing);
    let timer: NodeJS.Timeout | undefined;
    if (connectTimeoutMs > 0) {
      timer = setTimeout(() => {
        const err: NodeJS.ErrnoException = new Error(`connect timeout after ${connectTimeoutMs} ms`);
        err.code = 'ETIMEDOUT';
        conn.exchange?.fail(err);
      }, connectTimeoutMs);
    }
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      if (conn.exchange === ex) ex.connect();
    });
    socket.once('close', () => clearTimeout(timer));
    return ex;
  }

  /** @internal an exchange is over: pool its connection or close it. */
  release(conn: Conn, reusable: boolean): void {
    this.busy.delete(conn);
    const socket = conn.socket;
    if (!reusable || !this.pooling || socket.destroyed || (this.maxRequests > 0 && conn.served >= this.maxRequests) || this.idle.length >= this.maxIdle) {
      socket.destroy();
      return;
    }
    socket.resume(); // a paused response leaves the socket paused
    // One timer per connection, re-armed from now at each release (no timer made or cleared per
    // request): it fires idleTimeoutMs after the last release, and closes the connection only if
    // it is still idle then.
    if (conn.idleTimer) conn.idleTimer.refresh();
    else {
      conn.idleTimer = setTimeout(() => {
        if (!conn.exchange) socket.destroy();
      }, this.idleTimeoutMs);
      conn.idleTimer.unref();
    }
    this.idle.push(conn);
  }

  /** @internal a connection closed. */
  forget(conn: Conn): void {
    clearTimeout(conn.idleTimer);
    this.busy.delete(conn);
    const i = this.idle.indexOf(conn);
    if (i >= 0) this.idle.splice(i, 1);
  }

  /** Stops pooling: idle connections close now, busy ones after their response. Idempotent. */
  retire(): void {
    this.pooling = false;
    for (const c of this.idle.splice(0)) c.socket.destroy();
  }

  /** Closes every connection now, in flight or idle. Idempotent. */
  destroy(): void {
    this.retire();
    for (const c of [...this.busy]) c.socket.destroy();
  }
}
