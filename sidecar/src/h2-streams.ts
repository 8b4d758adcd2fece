/**
 * The sidecar's HTTP/2 streams, on the lean layer (h2wire-*.ts, docs/h2-lean.md). The HTTP/2 path
 * (listener-h2.ts, forward-h2.ts, mirror-h2.ts) was written against `node:http2`'s stream API; these
 * classes give it the part of that API it uses — header objects, `respond`, `write`/`end`, trailers
 * through `wantTrailers`, `pause`/`resume`/`pipe`, `'response'`/`'trailers'`/`'data'`/`'end'`/`'close'`
 * events, `rstCode` — over `H2Stream`, with none of Node's nghttp2 binding or its `Duplex`.
 *
 * Semantics kept from `node:http2`:
 *   - header objects: duplicates joined with `, ` (`cookie` with `; `, `set-cookie` an array),
 *     `:status` a number; outgoing objects may hold numbers and arrays, pseudo-headers go first;
 *   - a readable side starts paused and flows once a `'data'` listener is added or `resume()` is
 *     called; while paused, DATA is kept here and the stream's WINDOW_UPDATEs are held back, so the
 *     peer stops once the window is used; `'end'` follows the last chunk only once it was read;
 *   - `'close'` comes once, on a later tick (never from inside a call made on the stream), after the
 *     stream ended both ways or was reset; `rstCode` is then 0 for a clean end, else the RST_STREAM
 *     code (a connection lost before the peer finished counts as INTERNAL_ERROR); a reset stream
 *     never emits `'end'` (a truncated body is never taken for a whole one);
 *   - no `'error'` event: a reset is seen as `'close'` with its `rstCode`.
 */
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import type { H2WireConnection } from './h2wire-connection';
import { H2_CANCEL, H2_INTERNAL_ERROR, H2_NO_ERROR, type H2WireConnectionError, type H2WireStreamError } from './h2wire-errors';
import type { H2Fields, H2Stream, H2StreamHandler } from './h2wire-stream';

/** `flags` of a `'response'` event whose HEADERS ended the stream (Node's NGHTTP2_FLAG_END_STREAM). */
export const H2_FLAG_END_STREAM = 0x1;

/** Received fields as Node's header object (see the module comment). */
export function fieldsToHeaders(fields: H2Fields): IncomingHttpHeaders {
  // A plain object (V8 keeps it fast; a null-prototype one is a slow dictionary), so a field named
  // `__proto__` is dropped rather than stored.
  const out: Record<string, string | string[] | number> = {};
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    if (name === '__proto__') continue;
    const value = fields[i + 1]!;
    const prior = out[name];
    if (prior === undefined) out[name] = name === 'set-cookie' ? [value] : name === ':status' ? Number(value) : value;
    else if (Array.isArray(prior)) prior.push(value);
    else out[name] = `${prior}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  return out as IncomingHttpHeaders;
}

/** An outgoing header object as fields: pseudo-headers first, names lower-cased, arrays one field per value. */
export function headersToFields(headers: OutgoingHttpHeaders): H2Fields {
  const fields: string[] = [];
  let regular: string[] | undefined;
  for (const key in headers) {
    const v = headers[key];
    if (v === undefined || v === null) continue;
    const name = key.toLowerCase();
    const into = name.charCodeAt(0) === 0x3a ? fields : (regular ??= []);
    if (Array.isArray(v)) for (const x of v) into.push(name, String(x));
    else into.push(name, typeof v === 'string' ? v : String(v));
  }
  if (regular) for (let i = 0; i < regular.length; i++) fields.push(regular[i]!);
  return fields;
}

/** The connection a stream belongs to, as stream handlers read it (`stream.session.socket`). */
export interface H2SessionInfo {
  readonly socket: Socket;
}

/** Where a readable side's chunks are piped (a server stream, or anything with its contract). */
export interface H2PipeTarget {
  write(chunk: Buffer): boolean;
  end(): unknown;
  once(event: 'drain', fn: () => void): unknown;
}

/** The readable side and the life of one stream; subclasses add the writable side. */
abstract class H2StreamBase extends EventEmitter {
  /** True once the stream closed (ended both ways or reset). */
  closed = false;
  /** Node's name for the same moment. */
  get destroyed(): boolean {
    return this.closed;
  }
  /** Set when the stream closed: 0 clean, else the RST_STREAM code. */
  rstCode: number | undefined = undefined;
  /** True when the stream was reset before the peer ended its side. */
  aborted = false;

  private buffered: Buffer[] | undefined;
  private flowing: boolean | null = null;
  private endPending = false;
  private endEmitted = false;
  private closeScheduled = false;

  constructor(protected readonly h2: H2Stream) {
    super();
    h2.user = this;
  }

  override on(event: string | symbol, fn: (...args: any[]) => void): this {
    super.on(event, fn);
    if (event === 'data' && this.flowing === null) {
      // As Node's: adding the listener starts the flow on a later tick when something is waiting,
      // so an `'end'` listener added right after this one still hears the end.
      this.flowing = true;
      if (this.buffered?.length || this.endPending) process.nextTick(() => this.flowing === true && this.resume());
    }
    return this;
  }

  pause(): this {
    this.flowing = false;
    this.h2.pause();
    return this;
  }

  resume(): this {
    this.flowing = true;
    const buffered = this.buffered;
    while (buffered && buffered.length > 0) {
      this.emit('data', buffered.shift());
      if (this.flowing !== true) return this;
    }
    this.h2.resume();
    if (this.endPending) this.emitEnd();
    return this;
  }

  /** Streams this side's chunks into `dest` with backpressure, and ends it after the last. */
  pipe(dest: H2PipeTarget): void {
    const resume = (): void => void this.resume();
    this.on('data', (chunk: Buffer) => {
      if (!dest.write(chunk)) {
        this.pause();
        dest.once('drain', resume);
      }
    });
    this.once('end', () => dest.end());
    this.resume();
  }

  /** A DATA chunk from the peer (the handler's; not for callers). */
  pushData(chunk: Buffer): void {
    if (this.flowing === true && !this.buffered?.length) {
      this.emit('data', chunk);
      return;
    }
    (this.buffered ??= []).push(chunk);
    this.h2.pause();
  }

  /** The peer ended its side (the handler's). */
  pushEnd(): void {
    if (this.flowing === true && !this.buffered?.length) this.emitEnd();
    else this.endPending = true;
  }

  private emitEnd(): void {
    this.endPending = false;
    if (this.endEmitted || this.aborted) return;
    this.endEmitted = true;
    this.emit('end');
  }

  /** The stream ended both ways. */
  onClosed(): void {
    this.rstCode = H2_NO_ERROR;
    this.scheduleClose();
  }

  /** The stream was reset (by either side, or with its connection). */
  onReset(error: H2WireStreamError | H2WireConnectionError): void {
    const unfinished = !this.h2.remoteEnded;
    this.aborted = unfinished;
    this.rstCode = error.h2Code === H2_NO_ERROR && unfinished ? H2_INTERNAL_ERROR : error.h2Code;
    this.buffered = undefined;
    this.scheduleClose();
  }

  private scheduleClose(): void {
    this.closed = true;
    if (this.closeScheduled) return;
    this.closeScheduled = true;
    process.nextTick(() => this.emit('close'));
  }

  /** RST_STREAM(`code`) unless already closed. */
  close(code: number = H2_CANCEL): void {
    if (!this.closed) this.h2.reset(code);
  }

  // Handler entry points (one shared handler object per class calls these through `user`).
  static readonly handlerFor = (onHeaders: (self: any, fields: H2Fields, endStream: boolean) => void, onTrailers: (self: any, fields: H2Fields) => void): H2StreamHandler => ({
    headers: (s, fields, endStream) => onHeaders(s.user, fields, endStream),
    data: (s, chunk, endStream) => {
      const self = s.user as H2StreamBase;
      if (chunk.length > 0) self.pushData(chunk);
      if (endStream) self.pushEnd();
    },
    trailers: (s, fields) => onTrailers(s.user, fields),
    reset: (s, error) => (s.user as H2StreamBase).onReset(error),
    drain: (s) => void (s.user as H2StreamBase).emit('drain'),
    close: (s) => (s.user as H2StreamBase).onClosed(),
  });
}

/** A request stream received by the sidecar (Node's `ServerHttp2Stream`, the part used). */
export class H2ServerStream extends H2StreamBase {
  headersSent = false;
  sentHeaders: OutgoingHttpHeaders | undefined = undefined;
  sentTrailers: OutgoingHttpHeaders | undefined = undefined;
  private waitForTrailers = false;
  private ended = false;

  constructor(
    h2: H2Stream,
    readonly session: H2SessionInfo,
    /** The request's fields as received (name, value, ...). */
    readonly fields: H2Fields = [],
  ) {
    super(h2);
    h2.handler = SERVER_HANDLER;
  }

  /** Response headers; `endStream` ends the stream with them, `waitForTrailers` makes `end()` ask for trailers. */
  respond(headers: OutgoingHttpHeaders, options?: { readonly endStream?: boolean; readonly waitForTrailers?: boolean }): void {
    if (this.closed || this.headersSent) return;
    this.headersSent = true;
    this.sentHeaders = headers;
    this.waitForTrailers = options?.waitForTrailers === true;
    const endStream = options?.endStream === true;
    if (endStream) this.ended = true;
    try {
      this.h2.sendHeaders(headersToFields(headers), endStream);
    } catch {
      // Fields the encoder refused (an upstream's invalid value): this stream fails, not the connection.
      this.h2.reset(H2_INTERNAL_ERROR);
    }
  }

  /** DATA; false past the high-water mark (wait for `'drain'`). */
  write(chunk: Buffer | string): boolean {
    return this.h2.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  }

  /** Ends the response, after `chunk`; with `waitForTrailers`, `'wantTrailers'` is emitted first. */
  end(chunk?: Buffer | string): void {
    if (this.ended) return;
    this.ended = true;
    const body = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (!this.waitForTrailers) return this.h2.end(body);
    if (body && body.length > 0) this.h2.write(body);
    this.emit('wantTrailers');
    if (!this.h2.localEnded && !this.h2.queuedEnd) this.h2.end();
  }

  /** Ends the response with trailers (an empty set ends it with an empty DATA frame). */
  sendTrailers(headers: OutgoingHttpHeaders): void {
    this.sentTrailers = headers;
    const fields = headersToFields(headers);
    if (fields.length === 0) return this.h2.end();
    try {
      this.h2.sendTrailers(fields);
    } catch {
      this.h2.reset(H2_INTERNAL_ERROR);
    }
  }
}

const SERVER_HANDLER = H2StreamBase.handlerFor(
  () => undefined, // a server stream's headers come with the stream
  (self: H2ServerStream) => self.pushEnd(), // request trailers are not passed on (docs/protocols.md)
);

/** A request stream the sidecar sent upstream (Node's `ClientHttp2Stream`, the part used). */
export class H2ClientStream extends H2StreamBase {
  private ended = false;

  constructor(h2: H2Stream) {
    super(h2);
  }

  /** Whether this side ended the request. */
  get writableEnded(): boolean {
    return this.ended;
  }

  write(chunk: Buffer): boolean {
    return this.h2.write(chunk);
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.h2.end();
  }

  /** Resets the stream (CANCEL). */
  destroy(): void {
    this.close(H2_CANCEL);
  }

  /** @internal */
  static readonly HANDLER: H2StreamHandler = H2StreamBase.handlerFor(
    (self: H2ClientStream, fields, endStream) => {
      self.emit('response', fieldsToHeaders(fields), endStream ? H2_FLAG_END_STREAM : 0);
      if (endStream) self.pushEnd();
    },
    (self: H2ClientStream, fields) => {
      self.emit('trailers', fieldsToHeaders(fields));
      self.pushEnd();
    },
  );
}

/** One upstream HTTP/2 connection in the client role (Node's `ClientHttp2Session`, the part used). */
export class H2ClientSession {
  constructor(readonly connection: H2WireConnection) {}

  /** False once the connection closed or GOAWAY went either way. */
  get canRequest(): boolean {
    return this.connection.canRequest;
  }

  get closed(): boolean {
    return !this.connection.canRequest;
  }

  get destroyed(): boolean {
    return this.connection.closed;
  }

  /** A new stream; throws when the connection can take no more (closed, GOAWAY). */
  request(headers: OutgoingHttpHeaders | H2Fields, options?: { readonly endStream?: boolean }): H2ClientStream {
    const endStream = options?.endStream === true;
    const fields = Array.isArray(headers) ? headers : headersToFields(headers);
    const client = new H2ClientStream(this.connection.request(fields, endStream, H2ClientStream.HANDLER));
    if (endStream) client.end();
    return client;
  }

  /** GOAWAY: no new streams; the connection ends once the open ones have. */
  close(): void {
    this.connection.close();
  }

  destroy(): void {
    this.connection.destroy();
  }
}
