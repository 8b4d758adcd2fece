/**
 * A minimal gRPC client over `node:http2`, for the two calls the sidecar makes: the ADS stream
 * (bidirectional, h2c or TLS) and `CreateCertificate` to the CA on 15012 (unary over TLS,
 * `grpcUnary`). It replaces `@grpc/grpc-js` in the sidecar,
 * which cost about 7 MB of the sidecar's idle RSS for one call (docs/performance.md).
 *
 * What it speaks (gRPC over HTTP/2, PROTOCOL-HTTP2.md): `POST` with `content-type:
 * application/grpc` and `te: trailers`; messages as 5-byte prefixed frames (flag 0, big-endian
 * length, payload), never compressed; the status from `grpc-status` / `grpc-message` in the
 * trailers, or in the headers of a trailers-only response. No deadline (the stream lives until
 * either side ends it). Keepalive: an HTTP/2 PING every `keepaliveMs`, and the connection is
 * dropped when one is not answered within `keepaliveTimeoutMs`.
 *
 * Each call owns its HTTP/2 session: the caller reconnects (with its own backoff) by starting a
 * new call, so there is no channel state to keep. Events, each at most once per call and never
 * after `cancel()`: `'data'` per message, then either `'end'` (grpc-status 0) or `'error'` with a
 * `GrpcCallError` (any other status, or the transport failing).
 */
import { EventEmitter } from 'node:events';
import * as http2 from 'node:http2';

/** gRPC status codes used here (the full list: grpc/doc/statuscodes.md). */
export const GrpcStatus = { OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

/** A call that ended with a non-OK status: from the server, or local (transport, framing). */
export class GrpcCallError extends Error {
  readonly code = 'GRPC_CALL_FAILED';
  constructor(
    /** The gRPC status code. */
    readonly status: number,
    /** The status message (`grpc-message`, percent-decoded), as grpc-js's `details`. */
    readonly details: string,
    options?: { cause?: unknown },
  ) {
    super(`${status} ${details}`, options);
    this.name = 'GrpcCallError';
  }
}

export interface GrpcStreamOptions<Req, Res> {
  /** `host:port` of the server (h2c, prior knowledge, unless `tls`). */
  readonly address: string;
  /** TLS: the server's certificate must chain to one of these PEM roots and name the host. */
  readonly tls?: { readonly ca: string | readonly string[] };
  /** Request metadata (lower-case names), e.g. `authorization`. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** The method's path, `/package.Service/Method`. */
  readonly path: string;
  readonly serialize: (message: Req) => Buffer;
  /** Throws on bytes that do not decode (the call then fails with INTERNAL). */
  readonly deserialize: (bytes: Buffer) => Res;
  readonly keepaliveMs?: number;
  readonly keepaliveTimeoutMs?: number;
  /** How long the TCP connect and HTTP/2 handshake may take before the call fails UNAVAILABLE. */
  readonly connectTimeoutMs?: number;
  /** Largest message accepted from the server (grpc-js's default receive limit, 4 MiB). */
  readonly maxMessageBytes?: number;
}

const DEFAULTS = { keepaliveMs: 10_000, keepaliveTimeoutMs: 5_000, connectTimeoutMs: 10_000, maxMessageBytes: 4 * 1024 * 1024 };

/** One streaming call; see the module comment for its events. */
export class GrpcBidiCall<Req, Res> extends EventEmitter {
  private readonly session: http2.ClientHttp2Session;
  private readonly stream: http2.ClientHttp2Stream;
  private readonly opts: GrpcStreamOptions<Req, Res> & typeof DEFAULTS;
  private pending: Buffer = Buffer.alloc(0);
  private finished = false;
  private keepalive?: NodeJS.Timeout;
  private connectTimer?: NodeJS.Timeout;

  constructor(options: GrpcStreamOptions<Req, Res>) {
    super();
    this.opts = { ...DEFAULTS, ...options };
    const { address, path } = this.opts;
    const tls = this.opts.tls;
    this.session = tls ? http2.connect(`https://${address}`, { ca: tls.ca as string | string[], minVersion: 'TLSv1.2' }) : http2.connect(`http://${address}`);
    this.session.on('error', (err) => this.fail(GrpcStatus.UNAVAILABLE, err.message, err));
    this.session.on('close', () => this.fail(GrpcStatus.UNAVAILABLE, 'connection closed'));
    this.session.on('goaway', () => undefined); // the server ends our stream itself, with a status
    this.connectTimer = setTimeout(() => this.fail(GrpcStatus.UNAVAILABLE, `no connection within ${this.opts.connectTimeoutMs} ms`), this.opts.connectTimeoutMs);
    this.session.once('connect', () => {
      clearTimeout(this.connectTimer);
      this.startKeepalive();
    });

    this.stream = this.session.request(
      { ...(this.opts.metadata ?? {}), ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' },
      { endStream: false },
    );
    this.stream.on('response', (headers, flags) => this.onHeaders(headers, (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0));
    this.stream.on('trailers', (trailers) => this.onStatus(trailers));
    this.stream.on('data', (chunk: Buffer) => this.onData(chunk));
    this.stream.on('end', () => this.fail(GrpcStatus.INTERNAL, 'stream ended without a grpc-status'));
    this.stream.on('error', (err) => this.fail(GrpcStatus.UNAVAILABLE, err.message, err));
    this.stream.on('close', () => this.fail(GrpcStatus.UNAVAILABLE, `stream closed (HTTP/2 code ${this.stream.rstCode ?? '?'})`));
  }

  /** True once the call has ended (status received, failed or cancelled); writes are then dropped. */
  get writableEnded(): boolean {
    return this.finished;
  }

  /** Sends one message; dropped after the call ended. Never throws for a closed transport. */
  write(message: Req): void {
    if (this.finished) return;
    const payload = this.opts.serialize(message);
    const frame = Buffer.allocUnsafe(5 + payload.length);
    frame[0] = 0;
    frame.writeUInt32BE(payload.length, 1);
    payload.copy(frame, 5);
    this.stream.write(frame);
  }

  /** Half-closes: no more messages from this side (the server still answers). */
  end(): void {
    if (!this.finished) this.stream.end();
  }

  /** Ends the call from this side (RST_STREAM CANCEL) and closes the connection. Idempotent; no event follows. */
  cancel(): void {
    if (this.finished) return;
    this.finished = true;
    this.teardown();
  }

  private startKeepalive(): void {
    const { keepaliveMs, keepaliveTimeoutMs } = this.opts;
    const ping = (): void => {
      if (this.finished) return;
      const timeout = setTimeout(() => this.fail(GrpcStatus.UNAVAILABLE, `keepalive ping not answered within ${keepaliveTimeoutMs} ms`), keepaliveTimeoutMs);
      const sent = this.session.ping((err) => {
        clearTimeout(timeout);
        if (err && !this.finished) this.fail(GrpcStatus.UNAVAILABLE, `keepalive ping failed: ${err.message}`, err);
      });
      if (!sent) clearTimeout(timeout);
    };
    this.keepalive = setInterval(ping, keepaliveMs);
    this.keepalive.unref();
  }

  private onHeaders(headers: http2.IncomingHttpHeaders, endStream: boolean): void {
    const status = Number(headers[':status']);
    if (endStream && headers['grpc-status'] !== undefined) return this.onStatus(headers); // trailers-only
    if (status !== 200) return this.fail(httpToGrpc(status), `HTTP status ${status}`);
    const type = String(headers['content-type'] ?? '');
    if (!type.startsWith('application/grpc')) return this.fail(GrpcStatus.UNKNOWN, `content-type ${type || '(none)'} is not gRPC`);
    if (endStream) this.fail(GrpcStatus.INTERNAL, 'stream ended without a grpc-status');
  }

  private onStatus(fields: http2.IncomingHttpHeaders): void {
    const raw = fields['grpc-status'];
    const status = raw === undefined ? GrpcStatus.UNKNOWN : Number(raw);
    const message = decodeMessage(String(fields['grpc-message'] ?? ''));
    if (status === GrpcStatus.OK) {
      if (this.finished) return;
      this.finished = true;
      this.teardown();
      this.emit('end');
    } else {
      this.fail(Number.isInteger(status) ? status : GrpcStatus.UNKNOWN, message || (raw === undefined ? 'no grpc-status' : `grpc-status ${raw}`));
    }
  }

  private onData(chunk: Buffer): void {
    if (this.finished) return;
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (this.pending.length >= 5 && !this.finished) {
      if (this.pending[0] !== 0) return this.fail(GrpcStatus.INTERNAL, 'compressed message received, but no compression was offered');
      const length = this.pending.readUInt32BE(1);
      if (length > this.opts.maxMessageBytes) {
        return this.fail(GrpcStatus.RESOURCE_EXHAUSTED, `received message larger than max (${length} vs. ${this.opts.maxMessageBytes})`);
      }
      if (this.pending.length < 5 + length) return;
      const bytes = this.pending.subarray(5, 5 + length);
      this.pending = this.pending.subarray(5 + length);
      let message: Res;
      try {
        message = this.opts.deserialize(bytes);
      } catch (err) {
        return this.fail(GrpcStatus.INTERNAL, `cannot decode the response: ${(err as Error).message}`, err);
      }
      this.emit('data', message);
    }
  }

  private fail(status: number, details: string, cause?: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.teardown();
    this.emit('error', new GrpcCallError(status, details, { cause }));
  }

  private teardown(): void {
    clearTimeout(this.connectTimer);
    clearInterval(this.keepalive);
    if (!this.stream.closed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
    if (!this.session.destroyed) this.session.destroy();
  }
}

/** gRPC's mapping of an HTTP status without grpc-status (PROTOCOL-HTTP2.md / http-grpc-status-mapping.md). */
function httpToGrpc(status: number): number {
  if (status === 400) return GrpcStatus.INTERNAL;
  if (status === 401) return 16; // UNAUTHENTICATED
  if (status === 403) return 7; // PERMISSION_DENIED
  if (status === 404) return 12; // UNIMPLEMENTED
  if (status === 429 || status === 502 || status === 503 || status === 504) return GrpcStatus.UNAVAILABLE;
  return GrpcStatus.UNKNOWN;
}

/** `grpc-message` is percent-encoded; a malformed encoding is shown as received. */
function decodeMessage(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/**
 * One unary call: sends `message`, resolves with the single response, or rejects with a
 * `GrpcCallError` (the server's status, UNAVAILABLE for the transport, DEADLINE_EXCEEDED after
 * `timeoutMs`, default 10 s).
 */
export function grpcUnary<Req, Res>(options: GrpcStreamOptions<Req, Res> & { readonly timeoutMs?: number }, message: Req): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    const call = new GrpcBidiCall<Req, Res>(options);
    let response: Res | undefined;
    const timeoutMs = options.timeoutMs ?? 10_000;
    const timer = setTimeout(() => {
      call.cancel();
      reject(new GrpcCallError(GrpcStatus.DEADLINE_EXCEEDED, `no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    call.on('data', (m: Res) => (response ??= m));
    call.on('end', () => {
      clearTimeout(timer);
      if (response === undefined) reject(new GrpcCallError(GrpcStatus.INTERNAL, 'the server sent no response message'));
      else resolve(response);
    });
    call.on('error', (e: GrpcCallError) => {
      clearTimeout(timer);
      reject(e);
    });
    call.write(message);
    call.end();
  });
}
