/**
 * The request and response of the proxy listeners' lean HTTP/1.1 server (server-http1.ts): what
 * the proxy stages read and write, and nothing more — no `stream.Readable`/`Writable`, no
 * per-request listener churn (docs/performance.md explains why). The subset of `http.IncomingMessage`
 * and `http.ServerResponse` the stages use keeps its names and meaning, so stage code reads the
 * same and Node's own objects still satisfy these interfaces (the admin server, tests).
 */
import { STATUS_CODES, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';

/** What the proxy stages read of a downstream request (`http.IncomingMessage` satisfies it). */
export interface DownstreamRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly httpVersion: string;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  /** Lower-case names; duplicates combined as Node does. */
  readonly headers: IncomingHttpHeaders;
  /** `[name, value, ...]` as received. */
  readonly rawHeaders: string[];
  readonly socket: Socket;
  /** The whole body has been received. */
  readonly complete: boolean;
  on(event: 'data', fn: (chunk: Buffer) => void): unknown;
  once(event: 'end', fn: () => void): unknown;
  pause(): unknown;
  resume(): unknown;
}

/** What the proxy stages write of a downstream response (`http.ServerResponse` satisfies it). */
export interface DownstreamResponse {
  readonly req: DownstreamRequest;
  statusCode: number;
  shouldKeepAlive: boolean;
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  readonly writableFinished: boolean;
  readonly destroyed: boolean;
  writeHead(status: number, message?: string | OutgoingHttpHeaders | string[], headers?: OutgoingHttpHeaders | string[]): unknown;
  write(chunk: Buffer | string): boolean;
  end(chunk?: Buffer | string): unknown;
  destroy(): unknown;
  on(event: 'close' | 'finish' | 'drain', fn: () => void): unknown;
  once(event: 'close' | 'finish' | 'drain', fn: () => void): unknown;
  off(event: 'close' | 'finish' | 'drain', fn: () => void): unknown;
}

type Listener = () => void;

/** Header names Node keeps only the first of (`IncomingMessage.headers`). */
const FIRST_WINS = new Set([
  'content-type', 'content-length', 'user-agent', 'referer', 'host', 'authorization', 'proxy-authorization',
  'if-modified-since', 'if-unmodified-since', 'from', 'location', 'max-forwards', 'retry-after', 'etag',
  'last-modified', 'server', 'age', 'expires',
]);

/** `rawHeaders` as Node's `IncomingMessage.headers`: lower case, duplicates dropped, listed or joined. */
export function headersObject(raw: readonly string[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    const prior = out[name];
    if (prior === undefined) out[name] = name === 'set-cookie' ? [value] : value;
    else if (name === 'set-cookie') (prior as string[]).push(value);
    else if (FIRST_WINS.has(name)) continue;
    else out[name] = `${prior as string}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  return out;
}

/** The shared empty queue of a request that has queued nothing (never pushed to). */
const NOTHING_QUEUED: Buffer[] = [];

/**
 * A request received by the lean server. Its body is delivered in order through `'data'` events,
 * then `'end'`, only while flowing (`resume()`, or a `'data'` listener without `pause()`); chunks
 * that arrive while paused are kept, and the connection stops reading once more than
 * `BODY_HIGH_WATER` bytes wait.
 */
export class Http1Request implements DownstreamRequest {
  complete = false;
  private cachedHeaders: IncomingHttpHeaders | undefined;
  // Allocated on first use: most proxied requests have no body and no listener.
  private dataListeners: ((chunk: Buffer) => void)[] | undefined;
  private endListeners: Listener[] | undefined;
  private queued: Buffer[] = NOTHING_QUEUED;
  private queuedBytes = 0;
  private flowing = false;
  private explicitlyPaused = false;
  private ended = false;
  private flushScheduled = false;
  private dumped = false;

  constructor(
    readonly socket: Socket,
    readonly method: string,
    readonly url: string,
    readonly httpVersionMajor: number,
    readonly httpVersionMinor: number,
    readonly rawHeaders: string[],
    /** The connection: asked to stop or resume reading while the body waits. */
    private readonly source: RequestSource,
  ) {}

  get httpVersion(): string {
    return this.httpVersionMajor === 1 && this.httpVersionMinor === 1 ? '1.1' : `${this.httpVersionMajor}.${this.httpVersionMinor}`;
  }

  get headers(): IncomingHttpHeaders {
    return (this.cachedHeaders ??= headersObject(this.rawHeaders));
  }

  on(event: 'data', fn: (chunk: Buffer) => void): this {
    (this.dataListeners ??= []).push(fn);
    if (!this.explicitlyPaused) this.setFlowing(true);
    return this;
  }

  once(event: 'end', fn: Listener): this {
    (this.endListeners ??= []).push(fn);
    return this;
  }

  pause(): this {
    this.explicitlyPaused = true;
    this.flowing = false;
    return this;
  }

  resume(): this {
    this.explicitlyPaused = false;
    this.setFlowing(true);
    return this;
  }

  /**
   * @internal Its response is complete: whatever of the body is still to come is read and dropped,
   * so the connection stays in step for the next request (Node's `req._dump()`).
   */
  dump(): void {
    if (this.complete && this.queued.length === 0) return;
    this.dumped = true;
    this.dataListeners = undefined;
    this.queued = NOTHING_QUEUED;
    this.queuedBytes = 0;
    this.source.setReading(this, true);
  }

  /** @internal a body chunk from the parser. */
  push(chunk: Buffer): void {
    if (this.dumped) return;
    if (this.flowing && this.queued.length === 0) {
      const fns = this.dataListeners;
      if (fns) for (const fn of fns) fn(chunk);
      return;
    }
    if (this.queued === NOTHING_QUEUED) this.queued = [];
    this.queued.push(chunk);
    this.queuedBytes += chunk.length;
    if (this.queuedBytes > BODY_HIGH_WATER) this.source.setReading(this, false);
  }

  /** @internal the parser saw the end of the message. */
  finish(): void {
    this.complete = true;
    if (this.flowing && this.queued.length === 0) this.emitEnd();
  }

  private setFlowing(on: boolean): void {
    this.flowing = on;
    if (on && (this.queued.length > 0 || (this.complete && !this.ended)) && !this.flushScheduled) {
      // As a Readable does, buffered data flows from the next tick, so a listener added right
      // before a synchronous pause() sees nothing.
      this.flushScheduled = true;
      process.nextTick(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    while (this.flowing && this.queued.length > 0) {
      const chunk = this.queued.shift()!;
      this.queuedBytes -= chunk.length;
      const fns = this.dataListeners;
      if (fns) for (const fn of fns) fn(chunk);
    }
    if (this.queued.length === 0) {
      this.source.setReading(this, true);
      if (this.flowing && this.complete) this.emitEnd();
    }
  }

  private emitEnd(): void {
    if (this.ended) return;
    this.ended = true;
    const fns = this.endListeners;
    this.endListeners = undefined;
    if (fns) for (const fn of fns) fn();
  }
}

/** Where a request's body comes from: its connection, asked to stop (false) or resume (true) reading. */
export interface RequestSource {
  setReading(req: Http1Request, reading: boolean): void;
}

/** Removes the first `fn` from `list`. */
function remove(list: Listener[] | undefined, fn: Listener): void {
  const i = list ? list.indexOf(fn) : -1;
  if (i >= 0) list!.splice(i, 1);
}

/** Body bytes kept for a paused request before its connection stops reading. */
export const BODY_HIGH_WATER = 64 * 1024;

/** The connection side of a response: where its bytes go and when it is done. */
export interface ResponseSink {
  /**
   * Writes `parts` for this response, in order, in one socket write; `last`: the response is
   * complete. Returns false when the socket's buffer is full.
   */
  write(res: Http1Response, parts: readonly (string | Buffer)[], last: boolean): boolean;
  /** The response is destroyed: the connection must close. */
  destroy(res: Http1Response): void;
}

let dateCache = '';
let dateCachedAt = 0;
/** The `Date` header value, recomputed at most once a second. */
function httpDate(): string {
  const now = Date.now();
  if (now - dateCachedAt >= 1000) {
    dateCachedAt = now - (now % 1000);
    dateCache = new Date(now).toUTCString();
  }
  return dateCache;
}

/**
 * A response of the lean server. The head is serialized once, at the first write or `end`, and
 * goes out with the first body bytes in one socket write. Framing: the `Content-Length` given, else
 * chunked for HTTP/1.1, else (HTTP/1.0) delimited by closing the connection. No body for HEAD,
 * 1xx, 204 and 304.
 */
export class Http1Response implements DownstreamResponse {
  statusCode = 200;
  shouldKeepAlive: boolean;
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  private statusMessage = '';
  private head: OutgoingHttpHeaders | string[] | undefined;
  private chunked = false;
  private noBody = false;
  // 'close' and 'finish' fire at most once, so `once` is `on` for them; 'drain' keeps its `once`
  // listeners apart. Allocated on first use.
  private closeListeners: Listener[] | undefined;
  private finishListeners: Listener[] | undefined;
  private drainListeners: Listener[] | undefined;
  private drainOnce: Listener[] | undefined;

  constructor(
    readonly req: Http1Request,
    private readonly sink: ResponseSink,
    keepAlive: boolean,
  ) {
    this.shouldKeepAlive = keepAlive;
  }

  writeHead(status: number, message?: string | OutgoingHttpHeaders | string[], headers?: OutgoingHttpHeaders | string[]): this {
    if (this.headersSent) throw new Error('writeHead after the head was sent');
    this.statusCode = status;
    if (typeof message === 'string') {
      this.statusMessage = message;
      this.head = headers;
    } else {
      this.head = message;
    }
    return this;
  }

  write(chunk: Buffer | string): boolean {
    if (this.writableEnded || this.destroyed) return false;
    return this.send(chunk, false);
  }

  end(chunk?: Buffer | string): this {
    if (this.writableEnded || this.destroyed) return this;
    this.writableEnded = true;
    this.send(chunk ?? '', true);
    return this;
  }

  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.sink.destroy(this);
    return this;
  }

  on(event: 'close' | 'finish' | 'drain', fn: Listener): this {
    if (event === 'close') (this.closeListeners ??= []).push(fn);
    else if (event === 'finish') (this.finishListeners ??= []).push(fn);
    else (this.drainListeners ??= []).push(fn);
    return this;
  }

  once(event: 'close' | 'finish' | 'drain', fn: Listener): this {
    if (event === 'drain') (this.drainOnce ??= []).push(fn);
    else this.on(event, fn);
    return this;
  }

  off(event: 'close' | 'finish' | 'drain', fn: Listener): this {
    if (event === 'drain') {
      remove(this.drainListeners, fn);
      remove(this.drainOnce, fn);
    } else {
      remove(event === 'close' ? this.closeListeners : this.finishListeners, fn);
    }
    return this;
  }

  /** @internal the connection's buffer drained. */
  emitDrain(): void {
    if (this.drainListeners) for (const fn of this.drainListeners.slice()) fn();
    const once = this.drainOnce;
    if (once) {
      this.drainOnce = undefined;
      for (const fn of once) fn();
    }
  }

  /** @internal everything of this response was handed to the socket and flushed. */
  emitFinish(): void {
    if (this.writableFinished) return;
    this.writableFinished = true;
    const fns = this.finishListeners;
    if (fns) {
      this.finishListeners = undefined;
      for (const fn of fns) fn();
    }
    this.emitClose();
  }

  /** @internal the response is over: finished, or its connection closed first. */
  emitClose(): void {
    const fns = this.closeListeners;
    if (!fns) return;
    this.closeListeners = undefined;
    for (const fn of fns) fn();
  }

  private send(chunk: Buffer | string, last: boolean): boolean {
    const head = this.headersSent ? undefined : this.serializeHead(last ? chunk : undefined);
    this.headersSent = true;
    const size = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    let parts: (string | Buffer)[];
    if (this.noBody || (size === 0 && !(last && this.chunked))) {
      // No body on the wire (HEAD, 204, 304) whatever the caller writes, or nothing to write.
      parts = head === undefined ? [] : [head];
    } else if (this.chunked) {
      const open = size > 0 ? `${size.toString(16)}\r\n` : '';
      const close = size > 0 ? (last ? '\r\n0\r\n\r\n' : '\r\n') : '0\r\n\r\n';
      parts = size > 0 ? [head === undefined ? open : head + open, chunk, close] : [head === undefined ? close : head + close];
    } else {
      parts = head === undefined ? [chunk] : [head, chunk];
    }
    return this.sink.write(this, parts.length > 1 ? joined(parts) : parts, last);
  }

  /** The status line and headers; decides the body's framing. `whole`: the entire body, when known. */
  private serializeHead(whole: Buffer | string | undefined): string {
    const status = this.statusCode;
    const req = this.req;
    this.noBody = req.method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
    let out = `HTTP/1.1 ${status} ${this.statusMessage || STATUS_CODES[status] || 'unknown'}\r\n`;
    let seen = 0; // SEEN_* bits
    let connection: string | undefined;
    const h = this.head;
    if (Array.isArray(h)) {
      for (let i = 0; i < h.length; i += 2) {
        const name = h[i]!;
        const kind = headerKind(name);
        if (kind === CONNECTION) connection = String(h[i + 1]).toLowerCase();
        else if (kind !== TRANSFER_ENCODING) {
          seen |= kind;
          out += `${name}: ${h[i + 1]!}\r\n`;
        }
      }
    } else if (h) {
      for (const name in h) {
        const v = (h as OutgoingHttpHeaders)[name];
        if (v === undefined) continue;
        const kind = headerKind(name);
        if (kind === CONNECTION) connection = String(v).toLowerCase();
        else if (kind !== TRANSFER_ENCODING) {
          // Transfer-Encoding is dropped: framing is ours to decide.
          seen |= kind;
          if (Array.isArray(v)) for (const one of v) out += `${name}: ${one}\r\n`;
          else out += `${name}: ${v}\r\n`;
        }
      }
    }
    if (!(seen & SEEN_DATE)) out += `Date: ${httpDate()}\r\n`;
    if (connection === 'close') this.shouldKeepAlive = false;
    if (!this.noBody && !(seen & SEEN_LENGTH)) {
      if (whole !== undefined) {
        out += `Content-Length: ${Buffer.byteLength(whole)}\r\n`;
      } else if (req.httpVersionMinor >= 1) {
        this.chunked = true;
        out += 'Transfer-Encoding: chunked\r\n';
      } else {
        this.shouldKeepAlive = false; // HTTP/1.0 without a length: the close ends the body
      }
    }
    if (!this.shouldKeepAlive) out += 'Connection: close\r\n';
    else if (req.httpVersionMinor === 0) out += 'Connection: keep-alive\r\n';
    return `${out}\r\n`;
  }
}

// What a response header name means to the framing (`headerKind`); the SEEN_* values are bits.
const PLAIN = 0;
const SEEN_LENGTH = 1;
const SEEN_DATE = 2;
const CONNECTION = 4;
const TRANSFER_ENCODING = 8;

/** Compares case-insensitively, lower-casing only names of the four lengths that can match. */
function headerKind(name: string): number {
  const n = name.length;
  if (n !== 14 && n !== 4 && n !== 10 && n !== 17) return PLAIN;
  const lower = name.toLowerCase();
  if (lower === 'content-length') return SEEN_LENGTH;
  if (lower === 'date') return SEEN_DATE;
  if (lower === 'connection') return CONNECTION;
  return lower === 'transfer-encoding' ? TRANSFER_ENCODING : PLAIN;
}

/** Up to this many bytes, a response's parts are copied into one buffer: one `write`, not a `writev`. */
const JOIN_MAX_BYTES = 16 * 1024;

/**
 * `parts` as one buffer when small (strings as latin1, as the sinks write them), else as they are.
 * The head and the first body bytes then leave in one plain `write` (no cork, no `writev` and its
 * per-call arrays).
 */
function joined(parts: (string | Buffer)[]): (string | Buffer)[] {
  let total = 0;
  for (const p of parts) total += p.length;
  if (total > JOIN_MAX_BYTES) return parts;
  const buf = Buffer.allocUnsafe(total);
  let at = 0;
  for (const p of parts) at += typeof p === 'string' ? buf.write(p, at, 'latin1') : p.copy(buf, at);
  return [buf];
}

/**
 * A sink writing one response straight to `socket`, which then ends: for a connection handed over
 * by an `Upgrade` request, whose refusal or non-101 answer is its last response. The response's
 * `'close'` follows the socket's.
 */
export function socketSink(socket: Socket, res: () => Http1Response | undefined): ResponseSink {
  socket.once('close', () => {
    const r = res();
    if (r && !r.writableFinished) {
      (r as { destroyed: boolean }).destroyed = true;
      r.emitClose();
    }
  });
  socket.on('drain', () => res()?.emitDrain());
  return {
    write(r, parts, last) {
      if (socket.destroyed) return false;
      let ok = true;
      for (const part of parts) ok = typeof part === 'string' ? socket.write(part, 'latin1') : socket.write(part);
      if (last) socket.end(() => r.emitFinish());
      return ok;
    },
    destroy() {
      socket.destroy();
    },
  };
}
