/**
 * The downstream HTTP/2 (h2c) server of a proxy listener, with its abuse limits
 * (docs/http-safety.md, "HTTP/2"): CVE-2023-44487 Rapid Reset and the floods nghttp2 and Node can
 * bound, the HTTP/1 header limits applied to HTTP/2 header lists, and the listener's idle timeout.
 *
 *   - `maxConcurrentStreams` (SETTINGS_MAX_CONCURRENT_STREAMS): streams beyond it are refused by
 *     nghttp2 with RST_STREAM(REFUSED_STREAM) before any handler runs; a client that keeps
 *     opening them past `maxSessionRejectedStreams` has its connection closed (Node).
 *   - Rapid Reset: streams the client resets before their response completed are counted per
 *     connection in a fixed window; past `maxPrematureResets` in one window, while they are at
 *     least half of the streams it opened then, the connection gets GOAWAY(ENHANCE_YOUR_CALM) and
 *     is closed. Streams this sidecar resets itself (`resetStream`) are not counted.
 *   - Header lists: more fields than `maxHeaderCount`, or more bytes than `maxHeaderBytes` (counted
 *     as the same fields would take in HTTP/1: `name: value\r\n`, pseudo-headers included) are
 *     answered 431 and counted like HTTP/1's; nghttp2 resets a stream past twice those (a hard cap).
 *   - Invalid frames, SETTINGS entries, outstanding PINGs: Node's `maxSessionInvalidFrames`,
 *     `maxSettings`, `maxOutstandingPings`; nghttp2 also closes a connection whose peer makes it
 *     queue too many control frames (PING/SETTINGS floods).
 *   - Idle: a connection with no frame either way for the listener's `idleTimeoutMs` gets GOAWAY
 *     and is closed (streams still open on it are reset), as an HTTP/1 connection is destroyed.
 */
import http2 from 'node:http2';
import type { Logger } from '@weft/api';
import type { HttpLimits } from './http-limits';
import { recordRejection } from './http-strict';
import { DownstreamProtocolError, HeadersTooLargeError } from './proxy-errors';

const { NGHTTP2_NO_ERROR, NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants;

/** HTTP/2-only limits of the downstream server. */
export interface H2Limits {
  /** SETTINGS_MAX_CONCURRENT_STREAMS per connection. */
  readonly maxConcurrentStreams: number;
  /** Streams reset by the client before their response completed, per connection and window, before it is closed. */
  readonly maxPrematureResets: number;
  readonly resetWindowMs: number;
  /** Node's: streams refused (over `maxConcurrentStreams`) before the connection is closed. */
  readonly maxSessionRejectedStreams: number;
  /** Node's: invalid frames tolerated per connection. */
  readonly maxSessionInvalidFrames: number;
  /** Node's: PINGs we sent and not yet acknowledged. */
  readonly maxOutstandingPings: number;
  /** Node's: entries per SETTINGS frame. */
  readonly maxSettings: number;
}

export const DEFAULT_H2_LIMITS: H2Limits = Object.freeze({
  maxConcurrentStreams: 100,
  maxPrematureResets: 100,
  resetWindowMs: 10_000,
  maxSessionRejectedStreams: 100,
  maxSessionInvalidFrames: 100,
  maxOutstandingPings: 10,
  maxSettings: 32,
});

/** A connection closed for abusing HTTP/2 (Rapid Reset, a protocol error nghttp2 or Node refused). */
export class Http2AbuseError extends DownstreamProtocolError {
  readonly code = 'HTTP2_ABUSE';
  /** Never a response: the connection gets GOAWAY. */
  readonly status = 400;
  constructor(reason: string, detail: string) {
    super(reason, `http/2 connection closed: ${detail}`);
  }
}

/** Streams this sidecar reset itself: not the client's doing, so not counted as premature resets. */
const resetHere = new WeakSet<http2.Http2Stream>();

/** Resets `stream` with `code` (an upstream reset passed on, a timeout) without counting it against the client. */
export function resetStream(stream: http2.ServerHttp2Stream, code: number): void {
  resetHere.add(stream);
  if (!stream.closed) stream.close(code);
}

export interface H2ServerContext {
  readonly log: Logger;
  /** Names the server in logs (`listener virtualOutbound`). */
  readonly what: string;
  readonly h2?: Partial<H2Limits>;
}

/**
 * The h2c server behind protocol detection: its streams go to `onStream` once their header list is
 * within `limits`; each session is guarded as the module comment says.
 */
export function createH2Server(limits: HttpLimits, onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void, ctx: H2ServerContext): http2.Http2Server {
  const h2 = { ...DEFAULT_H2_LIMITS, ...ctx.h2 };
  const server = http2.createServer({
    // Hard caps, twice the limits answered 431 below: past them nghttp2 resets the stream.
    maxHeaderListPairs: limits.maxHeaderCount * 2 + 8,
    maxSendHeaderBlockLength: limits.maxHeaderBytes * 4,
    maxSessionRejectedStreams: h2.maxSessionRejectedStreams,
    maxSessionInvalidFrames: h2.maxSessionInvalidFrames,
    maxOutstandingPings: h2.maxOutstandingPings,
    maxSettings: h2.maxSettings,
    settings: { maxConcurrentStreams: h2.maxConcurrentStreams, maxHeaderListSize: limits.maxHeaderBytes * 2 },
  });
  server.on('session', (session: http2.ServerHttp2Session) => guardSession(session, limits, h2, ctx));
  server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, raw: string[]) => {
    const refused = checkHeaderList(raw, limits);
    if (!refused) return onStream(stream, headers);
    stream.on('error', () => undefined);
    recordRejection(ctx.log, refused, { server: ctx.what, client: stream.session?.socket?.remoteAddress, protocol: 'h2' });
    stream.respond({ ':status': refused.status, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(refused.message) });
    stream.end(refused.message);
  });
  return server;
}

/** The HTTP/1 header limits on an HTTP/2 header list (`raw`: name, value, name, value, ...). */
export function checkHeaderList(raw: readonly string[], limits: HttpLimits): HeadersTooLargeError | undefined {
  let fields = 0;
  let bytes = 0;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.charCodeAt(0) !== 0x3a) fields++;
    bytes += name.length + raw[i + 1]!.length + 4; // `name: value\r\n`
  }
  if (fields > limits.maxHeaderCount) return new HeadersTooLargeError('header-count', `more than ${limits.maxHeaderCount} header fields`);
  if (bytes > limits.maxHeaderBytes) return new HeadersTooLargeError('header-bytes', `header list over ${limits.maxHeaderBytes} bytes`);
  return undefined;
}

const TRANSPORT_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ERR_STREAM_PREMATURE_CLOSE']);

function guardSession(session: http2.ServerHttp2Session, limits: HttpLimits, h2: H2Limits, ctx: H2ServerContext): void {
  const client = session.socket?.remoteAddress;
  let windowStart = performance.now();
  let streams = 0;
  let resets = 0;
  let calmed = false;
  const roll = (): void => {
    const now = performance.now();
    if (now - windowStart < h2.resetWindowMs) return;
    windowStart = now;
    streams = 0;
    resets = 0;
  };
  session.on('stream', (stream: http2.ServerHttp2Stream) => {
    roll();
    streams++;
    stream.once('close', () => {
      if (calmed || resetHere.has(stream) || stream.rstCode === undefined || stream.rstCode === NGHTTP2_NO_ERROR) return;
      // Reset by the client (or the session) before our side finished: a premature reset.
      if (stream.writableFinished && stream.headersSent) return;
      roll();
      resets++;
      if (resets > h2.maxPrematureResets && resets * 2 >= streams) {
        calmed = true;
        const error = new Http2AbuseError('h2-rapid-reset', `${resets} streams reset by the client within ${h2.resetWindowMs} ms`);
        recordRejection(ctx.log, error, { server: ctx.what, client });
        ctx.log.warn('http/2 connection closed: rapid reset', { server: ctx.what, client, resets, streams });
        // The error makes Node send GOAWAY with the code given (without one it would send NO_ERROR).
        session.destroy(error, NGHTTP2_ENHANCE_YOUR_CALM);
      }
    });
  });
  // nghttp2's and Node's own limits end the session with an error (flood, too many invalid frames
  // or refused streams); counted here, the server's `sessionError` listener keeps it from throwing.
  session.on('error', (err: NodeJS.ErrnoException) => {
    // The client went away (nothing to count), or this guard closed the session (counted already).
    if (err instanceof Http2AbuseError || TRANSPORT_ERRORS.has(err.code ?? '')) return;
    recordRejection(ctx.log, new Http2AbuseError('h2-session-error', err.code ?? err.message), { server: ctx.what, client });
  });
  if (limits.idleTimeoutMs > 0) {
    session.setTimeout(limits.idleTimeoutMs, () => {
      ctx.log.debug('http/2 connection idle: closing', { server: ctx.what, client });
      session.destroy();
    });
  }
}
