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

/**
 * A request received by the lean server. Its body is delivered in order through `'data'` events,
 * then `'end'`, only while flowing (`resume()`, or a `'data'` listener without `pause()`); chunks
 * that arrive while paused are kept, and the connection stops reading once more than
 * `BODY_HIGH_WATER` bytes wait.
 */
export class Http1Request implements DownstreamRequest {
  readonly httpVersion: string;
  complete = false;
  private cachedHeaders: IncomingHttpHeaders | undefined;
  private dataListeners: ((chunk: Buffer) => void)[] = [];
  private endListeners: Listener[] = [];
  private queued: Buffer[] = [];
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
    /** Asks the connection to stop (false) or resume (true) reading while the body waits. */
    private readonly readable: (reading: boolean) => void,
  ) {
    this.httpVersion = `${httpVersionMajor}.${httpVersionMinor}`;
  }

  get headers(): IncomingHttpHeaders {
    return (this.cachedHeaders ??= headersObject(this.rawHeaders));
  }

  on(event: 'data', fn: (chunk: Buffer) => void): this {
    this.dataListeners.push(fn);
    if (!this.explicitlyPaused) this.setFlowing(true);
    return this;
  }

  once(event: 'end', fn: Listener): this {
    this.endListeners.push(fn);
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
    this.dataListeners = [];
    this.queued = [];
    this.queuedBytes = 0;
    this.readable(true);
  }

  /** @internal a body chunk from the parser. */
  push(chunk: Buffer): void {
    if (this.dumped) return;
    if (this.flowing && this.queued.length === 0) {
      for (const fn of this.dataListeners) fn(chunk);
      return;
    }
    this.queued.push(chunk);
    this.queuedBytes += chunk.length;
    if (this.queuedBytes > BODY_HIGH_WATER) this.readable(false);
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
      for (const fn of this.dataListeners) fn(chunk);
    }
    if (this.queued.length === 0) {
      this.readable(true);
      if (this.flowing && this.complete) this.emitEnd();
    }
  }

  private emitEnd(): void {
    if (this.ended) return;
    this.ended = true;
    const fns = this.endListeners;
    this.endListeners = [];
    for (const fn of fns) fn();
  }
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
  private closeListeners: Listener[] = [];
  private finishListeners: Listener[] = [];
  private drainListeners: Listener[] = [];

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
    this.listeners(event).push(fn);
    return this;
  }

  once(event: 'close' | 'finish' | 'drain', fn: Listener): this {
    const list = this.listeners(event);
    const wrapped = (): void => {
      const i = list.indexOf(wrapped);
      if (i >= 0) list.splice(i, 1);
      fn();
    };
    (wrapped as { original?: Listener }).original = fn;
    list.push(wrapped);
    return this;
  }

  off(event: 'close' | 'finish' | 'drain', fn: Listener): this {
    const list = this.listeners(event);
    const i = list.findIndex((l) => l === fn || (l as { original?: Listener }).original === fn);
    if (i >= 0) list.splice(i, 1);
    return this;
  }

  /** @internal the connection's buffer drained. */
  emitDrain(): void {
    for (const fn of this.drainListeners.slice()) fn();
  }

  /** @internal everything of this response was handed to the socket and flushed. */
  emitFinish(): void {
    if (this.writableFinished) return;
    this.writableFinished = true;
    for (const fn of this.finishListeners.slice()) fn();
    this.emitClose();
  }

  /** @internal the response is over: finished, or its connection closed first. */
  emitClose(): void {
    const fns = this.closeListeners;
    if (!fns.length) return;
    this.closeListeners = [];
    for (const fn of fns) fn();
  }

  private listeners(event: 'close' | 'finish' | 'drain'): Listener[] {
    return event === 'close' ? this.closeListeners : event === 'finish' ? this.finishListeners : this.drainListeners;
  }

  private send(chunk: Buffer | string, last: boolean): boolean {
    const parts: (string | Buffer)[] = [];
    if (!this.headersSent) {
      parts.push(this.serializeHead(last ? chunk : undefined));
      this.headersSent = true;
    }
    const size = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (this.noBody) {
      // No body on the wire (HEAD, 204, 304), whatever the caller writes.
    } else if (this.chunked) {
      if (size > 0) parts.push(`${size.toString(16)}\r\n`, chunk, last ? '\r\n0\r\n\r\n' : '\r\n');
      else if (last) parts.push('0\r\n\r\n');
    } else if (size > 0) {
      parts.push(chunk);
    }
    return this.sink.write(this, parts, last);
  }

  /** The status line and headers; decides the body's framing. `whole`: the entire body, when known. */
  private serializeHead(whole: Buffer | string | undefined): string {
    const status = this.statusCode;
    const req = this.req;
    this.noBody = req.method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
    let out = `HTTP/1.1 ${status} ${this.statusMessage || STATUS_CODES[status] || 'unknown'}\r\n`;
    let length = false;
    let date = false;
    let connection: string | undefined;
    const add = (name: string, value: string | number | readonly string[]): void => {
      const lower = name.length === 14 || name.length === 4 || name.length === 10 || name.length === 17 ? name.toLowerCase() : '';
      if (lower === 'content-length') length = true;
      else if (lower === 'date') date = true;
      else if (lower === 'connection') {
        connection = String(value).toLowerCase();
        return;
      } else if (lower === 'transfer-encoding') return; // framing is ours to decide
      if (Array.isArray(value)) for (const v of value) out += `${name}: ${v}\r\n`;
      else out += `${name}: ${value as string | number}\r\n`;
    };
    const h = this.head;
    if (Array.isArray(h)) {
      for (let i = 0; i < h.length; i += 2) add(h[i]!, h[i + 1]!);
    } else if (h) {
      for (const name in h) {
        const v = (h as OutgoingHttpHeaders)[name];
        if (v !== undefined) add(name, v);
      }
    }
    if (!date) out += `Date: ${httpDate()}\r\n`;
    if (connection === 'close') this.shouldKeepAlive = false;
    if (!this.noBody && !length) {
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
