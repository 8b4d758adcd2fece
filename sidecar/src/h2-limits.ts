/**
 * The downstream HTTP/2 (h2c, or h2 inside mesh mTLS) server of a proxy listener, on the lean layer
 * (h2wire-connection.ts in the server role, h2-streams.ts), with its abuse limits
 * (docs/http-safety.md, "HTTP/2"): CVE-2023-44487 Rapid Reset and the floods the layer bounds, the
 * HTTP/1 header limits applied to HTTP/2 header lists, and the listener's idle timeout.
 *
 *   - `maxConcurrentStreams` (SETTINGS_MAX_CONCURRENT_STREAMS): streams beyond it are refused with
 *     RST_STREAM(REFUSED_STREAM) before any handler runs; a client that keeps opening them past
 *     `maxSessionRejectedStreams` refusals gets GOAWAY(ENHANCE_YOUR_CALM).
 *   - Rapid Reset: streams the client resets before our side ended them are counted per
 *     connection in a fixed window; past `maxPrematureResets` in one window, while they are at
 *     least half of the streams it opened then, the connection gets GOAWAY(ENHANCE_YOUR_CALM).
 *     Streams this sidecar resets itself are not counted.
 *   - Header lists: more fields than `maxHeaderCount`, or more bytes than `maxHeaderBytes` (counted
 *     as the same fields would take in HTTP/1: `name: value\r\n`, pseudo-headers included) are
 *     answered 431 and counted like HTTP/1's; past twice those (a hard cap, enforced while
 *     decoding) the layer answers 431 itself.
 *   - Invalid frames, SETTINGS entries, CONTINUATION and control-frame floods: the layer's
 *     `maxInvalidFrames`, `maxSettings`, `maxContinuations`, `maxQueuedControlFrames`.
 *   - Idle: a connection with no frame either way for the listener's `idleTimeoutMs` gets GOAWAY
 *     and is closed (streams still open on it are reset), as an HTTP/1 connection is destroyed.
 *
 * Every connection the layer ends for the client's misbehaviour is counted (`recordRejection`):
 * `h2-rapid-reset` for Rapid Reset, `h2-session-error` for the rest.
 */
import type { IncomingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import type { Logger } from '@weft/api';
import { H2ServerStream, fieldsToHeaders, type H2SessionInfo } from './h2-streams';
import { H2WireConnection, h2WireOptions, type H2WireOptions } from './h2wire-connection';
import type { H2WireConnectionError } from './h2wire-errors';
import type { H2Fields, H2Stream } from './h2wire-stream';
import type { HttpLimits } from './http-limits';
import { recordRejection } from './http-strict';
import { DownstreamProtocolError, HeadersTooLargeError } from './proxy-errors';

/** HTTP/2-only limits of the downstream server. */
export interface H2Limits {
  /** SETTINGS_MAX_CONCURRENT_STREAMS per connection. */
  readonly maxConcurrentStreams: number;
  /** Streams reset by the client before their response completed, per connection and window, before it is closed. */
  readonly maxPrematureResets: number;
  readonly resetWindowMs: number;
  /** Streams refused (over `maxConcurrentStreams`) before the connection is closed. */
  readonly maxSessionRejectedStreams: number;
  /** Invalid frames (stream errors the client caused) tolerated per connection. */
  readonly maxSessionInvalidFrames: number;
  /** PINGs we sent and not yet acknowledged (this side sends none on the downstream server). */
  readonly maxOutstandingPings: number;
  /** Entries per SETTINGS frame. */
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

/** A connection closed for abusing HTTP/2 (Rapid Reset, a flood, a protocol error). */
export class Http2AbuseError extends DownstreamProtocolError {
  readonly code = 'HTTP2_ABUSE';
  /** Never a response: the connection gets GOAWAY. */
  readonly status = 400;
  constructor(reason: string, detail: string) {
    super(reason, `http/2 connection closed: ${detail}`);
  }
}

/** Resets `stream` with `code` (an upstream reset passed on, a timeout); not counted against the client. */
export function resetStream(stream: H2ServerStream, code: number): void {
  stream.close(code);
}

export interface H2ServerContext {
  readonly log: Logger;
  /** Names the server in logs (`listener virtualOutbound`). */
  readonly what: string;
  readonly h2?: Partial<H2Limits>;
}

/** One HTTP/2 stream, its headers as Node's header object. */
export type H2StreamListener = (stream: H2ServerStream, headers: IncomingHttpHeaders) => void;

/** Connection errors that are not the client's misbehaviour: not counted. */
const NOT_ABUSE = new Set(['destroyed', 'idle', 'socket-error', 'socket-closed', 'goaway']);

/**
 * The HTTP/2 server behind protocol detection: `accept` takes a connection whose first bytes were
 * put back on the socket; its streams go to `onStream` once their header list is within `limits`.
 */
export class H2Server {
  private readonly connections = new Set<H2WireConnection>();
  private readonly options: H2WireOptions;
  private closing = false;

  constructor(
    private readonly limits: HttpLimits,
    private readonly onStream: H2StreamListener,
    private readonly ctx: H2ServerContext,
  ) {
    const h2 = { ...DEFAULT_H2_LIMITS, ...ctx.h2 };
    this.options = h2WireOptions({
      maxConcurrentStreams: h2.maxConcurrentStreams,
      // Hard caps, twice the limits answered 431 in `stream` below.
      maxHeaderListSize: limits.maxHeaderBytes * 2,
      maxHeaderCount: limits.maxHeaderCount * 2 + 8,
      maxPrematureResets: h2.maxPrematureResets,
      resetWindowMs: h2.resetWindowMs,
      maxRejectedStreams: h2.maxSessionRejectedStreams,
      maxInvalidFrames: h2.maxSessionInvalidFrames,
      maxSettings: h2.maxSettings,
      idleTimeoutMs: limits.idleTimeoutMs,
    });
  }

  /** Connections open now. */
  get size(): number {
    return this.connections.size;
  }

  /** Serves `socket` (paused by detection, its first bytes put back). */
  accept(socket: Socket): void {
    const session: H2SessionInfo = { socket };
    const connection: H2WireConnection = new H2WireConnection(
      socket,
      'server',
      {
        onStream: (s, fields, endStream) => this.stream(session, s, fields, endStream),
        onClose: (error) => {
          this.connections.delete(connection);
          if (error && !error.remote && !NOT_ABUSE.has(error.reason)) this.abused(error, socket);
        },
      },
      this.options,
    );
    this.connections.add(connection);
    if (this.closing) connection.close();
    socket.resume();
  }

  /** GOAWAY on every connection: open streams finish, then each connection ends. */
  close(): void {
    this.closing = true;
    for (const c of this.connections) c.close();
  }

  destroy(): void {
    this.closing = true;
    for (const c of [...this.connections]) c.destroy();
    this.connections.clear();
  }

  private stream(session: H2SessionInfo, s: H2Stream, fields: H2Fields, endStream: boolean): void {
    const stream = new H2ServerStream(s, session, fields);
    if (endStream) stream.pushEnd();
    const refused = checkHeaderList(fields, this.limits);
    if (!refused) return this.onStream(stream, fieldsToHeaders(fields));
    recordRejection(this.ctx.log, refused, { server: this.ctx.what, client: session.socket.remoteAddress, protocol: 'h2' });
    stream.respond({ ':status': refused.status, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(refused.message) });
    stream.end(refused.message);
  }

  private abused(error: H2WireConnectionError, socket: Socket): void {
    const client = socket.remoteAddress;
    if (error.reason === 'rapid-reset') {
      recordRejection(this.ctx.log, new Http2AbuseError('h2-rapid-reset', error.message), { server: this.ctx.what, client });
      this.ctx.log.warn('http/2 connection closed: rapid reset', { server: this.ctx.what, client, detail: error.message });
      return;
    }
    recordRejection(this.ctx.log, new Http2AbuseError('h2-session-error', `${error.reason}: ${error.message}`), { server: this.ctx.what, client });
  }
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

