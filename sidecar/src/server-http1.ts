/**
 * The proxy listeners' lean HTTP/1.1 server: sockets come from protocol detection
 * (server-lifecycle.ts), requests are parsed by Node's own llhttp binding in strict mode, and each
 * request becomes an `Http1Request` / `Http1Response` pair (http1-message.ts) handed to the
 * listener. It does what `http.Server` did for the proxy listeners, with less per request:
 *
 * - pipelining: requests are dispatched as they are parsed; responses go out in request order (a
 *   response behind an unfinished one is buffered until its turn);
 * - keep-alive as llhttp decides it (HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
 *   `Connection: keep-alive`); `Expect: 100-continue` answered `100 Continue`, any other
 *   expectation `417`;
 * - `Upgrade` requests handed over with their socket and the bytes after the head; `CONNECT`
 *   refused `405`;
 * - what llhttp refuses, and the headers/request timeouts, answered with `Connection: close` by
 *   the same rules as before (docs/http-safety.md), counted and logged; the idle timeout (no byte
 *   either way) answers `408` to a request still arriving, else closes;
 * - `close()`: idle connections close at once; busy ones answer `Connection: close` and end after
 *   their response; `destroy()` cuts them all.
 */
import type { Socket } from 'node:net';
import type { Logger } from '@weft/api';
import type { HttpLimits } from './http-limits';
import { clientErrorToProxyError, recordRejection, respondAndClose } from './http-strict';
import { answerRefusal } from './http-refusal';
import { Http1Request, Http1Response, type RequestSource, type ResponseSink } from './http1-message';
import { MethodNotAllowedError, RequestTimeoutError } from './proxy-errors';
import { HTTPParser, type LlhttpParser } from './upstream-http1';
import { createRequire } from 'node:module';

const { methods } = createRequire(__filename)('_http_common') as { methods: string[] };

export interface Http1ServerOptions {
  /** Names the server in logs (`listener NAME`). */
  readonly what: string;
  readonly log: Logger;
  readonly limits: HttpLimits;
  readonly onRequest: (req: Http1Request, res: Http1Response) => void;
  /** `Upgrade` requests: the socket (and the bytes after the head) are the handler's from now on. */
  readonly onUpgrade: (req: Http1Request, socket: Socket, head: Buffer) => void;
}

const kOnMessageBegin = (HTTPParser as unknown as { kOnMessageBegin: number }).kOnMessageBegin;

/** A timeout as llhttp-adjacent errors look to `clientErrorToProxyError`. */
function timeoutError(): Error & { code: string } {
  return Object.assign(new Error('request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' });
}

/** One downstream connection. */
class Connection implements ResponseSink, RequestSource {
  private readonly parser: LlhttpParser = new HTTPParser();
  /** Responses in request order; the first is the one writing to the socket. */
  private readonly responses: Http1Response[] = [];
  /** Output of responses waiting behind the first. */
  private readonly held = new Map<Http1Response, { parts: (string | Buffer)[]; last: boolean }>();
  /** The request whose body the parser is reading. */
  private current: Http1Request | undefined;
  private partial: string[] | undefined;
  private partialUrl = '';
  /** The most recently finished response, while the connection lives (for `onParseError`). */
  private lastFinished: Http1Response | undefined;
  /** An upgrade request waiting for the responses before it. */
  private pendingUpgrade: { readonly req: Http1Request; readonly head: Buffer } | undefined;
  /** Set when llhttp finished an `Upgrade` request's head: the socket is handed over after `execute`. */
  private upgrade: Http1Request | undefined;
  /** When the request being parsed began (0: between requests); for the headers/request timeouts. */
  startedAt = 0;
  headersDone = false;
  /** Since when the connection has no request and no response in progress (0: busy). */
  idleSince: number;
  private dead = false;

  constructor(
    readonly socket: Socket,
    private readonly server: Http1Server,
  ) {
    this.idleSince = Date.now();
    const p = this.parser;
    p.initialize(HTTPParser.REQUEST, {}, server.limits.maxHeaderBytes, 0);
    p[kOnMessageBegin] = () => {
      this.partial = undefined;
      this.partialUrl = '';
      this.startedAt = Date.now();
      this.headersDone = false;
      this.idleSince = 0;
    };
    // Beyond 32 header fields llhttp hands over what it has so far, with the URL, before the end of
    // the head; kOnHeadersComplete then gets neither.
    p[HTTPParser.kOnHeaders] = (headers: string[], url: string) => {
      (this.partial ??= []).push(...headers);
      this.partialUrl += url;
    };
    p[HTTPParser.kOnHeadersComplete] = (maj: number, min: number, headers: string[] | undefined, method: number, url: string | undefined, _s: unknown, _m: unknown, upgrade: boolean, keepAlive: boolean) =>
      this.onHeaders(maj, min, headers ?? this.partial ?? [], methods[method] ?? 'GET', url || this.partialUrl, upgrade, keepAlive);
    p[HTTPParser.kOnBody] = (chunk: Buffer) => this.current?.push(chunk);
    p[HTTPParser.kOnMessageComplete] = () => {
      // Trailer fields arrive like header fields (kOnHeaders) after the head; they are dropped.
      this.partial = undefined;
      this.partialUrl = '';
      const req = this.current;
      this.current = undefined;
      this.startedAt = 0;
      req?.finish();
    };

    socket.on('data', (data: Buffer) => this.onData(data));
    socket.on('end', () => this.onEnd());
    socket.on('drain', () => this.responses[0]?.emitDrain());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.onClose());
    if (server.limits.idleTimeoutMs > 0) {
      socket.setTimeout(server.limits.idleTimeoutMs);
      socket.on('timeout', () => this.onIdleTimeout());
    }
  }

  /** No request or response in progress. */
  get idle(): boolean {
    return this.responses.length === 0 && this.startedAt === 0;
  }

  /** A request's body waits (`reading` false) or may flow again. */
  setReading(_req: Http1Request, reading: boolean): void {
    if (this.dead) return;
    if (reading) this.socket.resume();
    else this.socket.pause();
  }

  write(res: Http1Response, parts: readonly (string | Buffer)[], last: boolean): boolean {
    if (this.responses[0] !== res) {
      const h = this.held.get(res);
      if (h) {
        h.parts.push(...parts);
        h.last ||= last;
      } else {
        this.held.set(res, { parts: [...parts], last });
      }
      return true;
    }
    return this.flush(res, parts, last);
  }

  destroy(_res: Http1Response): void {
    this.socket.destroy();
  }

  /** `close()` of the server: idle now, busy after the current responses. */
  drain(): void {
    if (this.idle) {
      this.socket.end();
      return;
    }
    for (const r of this.responses) if (!r.headersSent) r.shouldKeepAlive = false;
  }

  /** Called by the server's periodic check. */
  checkTimers(now: number): void {
    const limits = this.server.limits;
    if (this.dead) return;
    if (this.startedAt > 0) {
      const elapsed = now - this.startedAt;
      if ((!this.headersDone && limits.headersTimeoutMs > 0 && elapsed >= limits.headersTimeoutMs) || (limits.requestTimeoutMs > 0 && elapsed >= limits.requestTimeoutMs)) {
        this.onParseError(timeoutError());
      }
    } else if (this.idleSince > 0 && limits.keepAliveTimeoutMs > 0 && now - this.idleSince >= limits.keepAliveTimeoutMs) {
      this.socket.destroy();
    }
  }

  private flush(res: Http1Response, parts: readonly (string | Buffer)[], last: boolean): boolean {
    const socket = this.socket;
    if (socket.destroyed) return false;
    let ok = true;
    const n = parts.length;
    if (n > 1) socket.cork();
    for (let i = 0; i < n; i++) {
      const part = parts[i]!;
      if (last && i === n - 1) ok = socket.write(part, typeof part === 'string' ? 'latin1' : undefined, () => this.finished(res));
      else ok = typeof part === 'string' ? socket.write(part, 'latin1') : socket.write(part);
    }
    if (n > 1) socket.uncork();
    if (last && n === 0) {
      // Nothing left to write (the body went out with earlier writes): finished once those are
      // flushed. An empty write would cost a syscall per response just for its callback.
      if (socket.writableLength === 0) process.nextTick(finishedLater, this, res);
      else socket.write('', () => this.finished(res));
    }
    return ok;
  }

  /** `res` is flushed: the next response's turn, or the end of the connection. @internal */
  finished(res: Http1Response): void {
    if (this.responses[0] !== res) return;
    this.responses.shift();
    this.lastFinished = res;
    res.req.dump();
    res.emitFinish();
    if (!res.shouldKeepAlive) {
      this.close();
      return;
    }
    const next = this.responses[0];
    if (next) {
      const h = this.held.get(next);
      if (h) {
        this.held.delete(next);
        this.flush(next, h.parts, h.last);
      }
      return;
    }
    const upgrade = this.pendingUpgrade;
    if (upgrade) {
      this.pendingUpgrade = undefined;
      this.handOver(upgrade.req, upgrade.head);
      return;
    }
    if (this.startedAt === 0) this.idleSince = Date.now();
    if (this.server.isClosing && this.idle) this.socket.end();
  }

  private onData(data: Buffer): void {
    if (this.dead) return;
    const r = this.parser.execute(data);
    if (typeof r !== 'number') {
      this.onParseError(r as Error & { code?: string });
      return;
    }
    const up = this.upgrade;
    if (up) {
      this.upgrade = undefined;
      // The socket changes hands only once the responses before the upgrade are out: its handler
      // writes to the socket directly. If one of them closes the connection, it never does.
      this.dead = true;
      this.socket.pause();
      const head = data.subarray(r);
      if (this.responses.length === 0) this.handOver(up, head);
      else this.pendingUpgrade = { req: up, head };
    }
  }

  /**
   * The client sent FIN. As `http.Server` does by default, that is the client going away: a request
   * cut short is a parse error like any other; requests in flight are abandoned (their responses
   * close, which aborts their upstream requests) and the connection ends once what was written is
   * flushed.
   */
  private onEnd(): void {
    if (this.dead) {
      if (!this.socket.writableEnded) this.socket.end();
      return;
    }
    const r = this.parser.finish();
    if (r) return this.onParseError(r as Error & { code?: string });
    this.abandon();
    this.close();
  }

  private onHeaders(maj: number, min: number, raw: string[], method: string, url: string, upgrade: boolean, keepAlive: boolean): number {
    this.partial = undefined;
    this.partialUrl = '';
    this.headersDone = true;
    const req = new Http1Request(this.socket, method, url, maj, min, raw, this);
    this.current = req;
    if (method === 'CONNECT') {
      // A TCP tunnel to any host is not proxied: refused, counted, never left hanging. What follows
      // is tunnel data, never parsed; the 405 goes out after any earlier pipelined responses.
      const error = new MethodNotAllowedError('connect-method', 'CONNECT is not supported');
      recordRejection(this.server.log, error, { server: this.server.what, client: this.socket.remoteAddress });
      this.dead = true;
      this.socket.pause();
      const res = new Http1Response(req, this, false);
      this.responses.push(res);
      req.finish();
      respondAndClose(res, error);
      return 0;
    }
    if (upgrade) {
      this.upgrade = req;
      return 0;
    }
    const res = new Http1Response(req, this, keepAlive && !this.server.isClosing);
    this.responses.push(res);
    // `100 Continue` only when no earlier response is still going out (a 100 must not land inside
    // one). Any other expectation is refused by the strict stage, after the framing checks.
    if (min >= 1 && this.responses.length === 1 && expectation(raw)?.toLowerCase() === '100-continue') {
      this.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
    }
    this.server.onRequest(req, res);
    return 0;
  }

  /** Hands the socket to the upgrade handler: this connection lets go of it entirely. */
  private handOver(req: Http1Request, head: Buffer): void {
    this.dead = true;
    this.server.forget(this);
    const s = this.socket;
    s.removeAllListeners('data');
    s.removeAllListeners('end');
    s.removeAllListeners('drain');
    s.removeAllListeners('timeout');
    s.removeAllListeners('close');
    s.removeAllListeners('error');
    s.setTimeout(0);
    this.parser.close();
    this.server.onUpgrade(req, s, head);
  }

  /**
   * llhttp refused the bytes (or a headers/request timeout fired). The connection cannot be
   * trusted past this point: answer if no response owns it yet, then close it.
   */
  private onParseError(err: Error & { code?: string; reason?: string }): void {
    this.dead = true;
    this.startedAt = 0;
    const socket = this.socket;
    socket.pause();
    const server = this.server;
    const error = clientErrorToProxyError(err, server.limits);
    if (!error) {
      socket.destroy();
      return;
    }
    const res = this.responses[this.responses.length - 1] ?? this.lastFinished;
    if (res && !res.shouldKeepAlive && (res.writableEnded || res.req.complete)) {
      // The last request closes the connection (`Connection: close`, HTTP/1.0, or a rejection,
      // already counted) and was read whole: what the parser choked on comes after it and is
      // nobody's request. The connection ends once that response is out; nothing more is
      // answered or counted.
      server.log.debug('unparsed bytes after a closing response', { server: server.what, code: error.code, reason: error.reason });
      return;
    }
    recordRejection(server.log, error, { server: server.what, client: socket.remoteAddress });
    const inFlight = res && !res.writableEnded ? res : undefined;
    answerRefusal(error, socket, inFlight, inFlight ? undefined : this.responses[this.responses.length - 1]);
  }

  /**
   * No byte moved for `idleTimeoutMs`. A request still arriving (a body trickled or stalled) is
   * answered 408 and counted; otherwise the connection is just closed, which aborts any upstream
   * request still waiting.
   */
  private onIdleTimeout(): void {
    const res = this.responses[this.responses.length - 1];
    if (res && !res.writableEnded && !res.headersSent && !res.req.complete) {
      const error = new RequestTimeoutError('idle-timeout', 'no data received in time');
      recordRejection(this.server.log, error, { server: this.server.what, client: this.socket.remoteAddress });
      this.dead = true;
      respondAndClose(res, error);
      return;
    }
    this.socket.destroy();
  }

  /** Ends the connection once what was written is flushed. */
  private close(): void {
    this.dead = true;
    const s = this.socket;
    if (s.destroyed) return;
    s.end(() => s.destroy());
  }

  private onClose(): void {
    this.dead = true;
    this.server.forget(this);
    this.parser.close();
    this.abandon();
  }

  /** Responses still owed will never go out: each closes (the stages abort their upstream work). */
  private abandon(): void {
    const pending = this.responses.splice(0);
    this.held.clear();
    for (const r of pending) {
      (r as { destroyed: boolean }).destroyed = true;
      r.emitClose();
    }
  }
}

/** `nextTick`'s callback for a response already flushed (arguments, not a closure per response). */
function finishedLater(c: Connection, res: Http1Response): void {
  c.finished(res);
}

/** The value of `Expect`, if any. */
function expectation(raw: readonly string[]): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 6 && raw[i]!.toLowerCase() === 'expect') return raw[i + 1];
  }
  return undefined;
}

/** The HTTP/1.1 half of a proxy listener. Not listening itself: `accept` takes detected sockets. */
export class Http1Server {
  private readonly connections = new Set<Connection>();
  private timer: NodeJS.Timeout | undefined;
  private closing = false;
  private draining = false;
  readonly what: string;
  readonly log: Logger;
  readonly limits: HttpLimits;
  readonly onRequest: Http1ServerOptions['onRequest'];
  readonly onUpgrade: Http1ServerOptions['onUpgrade'];

  constructor(options: Http1ServerOptions) {
    this.what = options.what;
    this.log = options.log;
    this.limits = options.limits;
    this.onRequest = options.onRequest;
    this.onUpgrade = options.onUpgrade;
  }

  get isClosing(): boolean {
    return this.closing || this.draining;
  }

  /**
   * Still serving, but every response says `Connection: close` and idle connections end now, so
   * callers open new connections for further requests (and reach another pod once they have
   * learnt this one is leaving). Envoy does the same while draining. Idempotent.
   */
  softDrain(): void {
    this.draining = true;
    for (const c of this.connections) c.drain();
  }

  /** Serves `socket` (paused by detection, its first bytes put back). */
  accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    // A client's FIN must not cut off the responses it is still owed: the connection ends itself.
    socket.allowHalfOpen = true;
    this.connections.add(new Connection(socket, this));
    if (!this.timer) {
      // One timer for every connection's headers, request and keep-alive timeouts (as Node's
      // `connectionsCheckingInterval`): no timer is set per request.
      this.timer = setInterval(() => {
        const now = Date.now();
        for (const c of this.connections) c.checkTimers(now);
      }, this.limits.timeoutCheckIntervalMs);
      this.timer.unref();
    }
    socket.resume();
  }

  /** @internal */
  forget(c: Connection): void {
    this.connections.delete(c);
    if (this.connections.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  /** Idle connections close now; busy ones after their responses (which say `Connection: close`). */
  close(): void {
    this.closing = true;
    for (const c of this.connections) c.drain();
  }

  /** Every connection closes now. */
  destroy(): void {
    this.closing = true;
    for (const c of [...this.connections]) c.socket.destroy();
  }
}
