/**
 * One HTTP/2 stream of an `H2WireConnection` (docs/h2-lean.md, "Streams"): a plain object with
 * the stream's state, flow-control windows and outbound queue, and one handler object for its
 * events (no EventEmitter per stream: a relay passes the same handler to every stream and keeps its
 * per-stream state in `user`). The connection does the work; these methods only name it.
 *
 * Events in order: `headers` (response headers; a server's request headers come with
 * `onStream`), `data` chunks (each a view of the socket's chunk: copy it to keep it past the
 * call), then either `trailers` or a chunk with `endStream`, and `close`; or `reset` at any
 * point, after which nothing else arrives. `drain` follows a `write` that returned false.
 */
import type { H2WireConnectionError, H2WireStreamError } from './h2wire-errors';

/** A field section, flat: name, value, name, value, ... (names lower-case, pseudo-headers first). */
export type H2Fields = string[];

/**
 * Values of the fields the peer sent never-indexed (RFC 7541 §6.2.3), or undefined (the usual
 * case). A relay passes it to the next hop's `sendHeaders` / `sendTrailers` / `request`, which send
 * those fields never-indexed too, as §7.1.3 asks of intermediaries.
 */
export type H2NeverIndexed = ReadonlySet<string> | undefined;

export interface H2StreamHandler {
  headers(stream: H2Stream, fields: H2Fields, endStream: boolean, neverIndexed?: H2NeverIndexed): void;
  data(stream: H2Stream, chunk: Buffer, endStream: boolean): void;
  trailers(stream: H2Stream, fields: H2Fields, neverIndexed?: H2NeverIndexed): void;
  /** The stream ended early: reset by the peer, by this side, or with its connection. */
  reset(stream: H2Stream, error: H2WireStreamError | H2WireConnectionError): void;
  /** The outbound queue is below its high-water mark again. */
  drain?(stream: H2Stream): void;
  /** Both directions ended normally. */
  close?(stream: H2Stream): void;
}

/** The methods of the connection a stream calls (kept narrow so the two files do not import each other). */
export interface H2StreamOwner {
  sendHeaders(stream: H2Stream, fields: H2Fields, endStream: boolean, neverIndexed?: H2NeverIndexed): void;
  write(stream: H2Stream, chunk: Buffer | undefined, endStream: boolean): boolean;
  sendTrailers(stream: H2Stream, fields: H2Fields, neverIndexed?: H2NeverIndexed): void;
  reset(stream: H2Stream, h2Code: number): void;
  resume(stream: H2Stream): void;
}

const IGNORE: H2StreamHandler = {
  headers: () => undefined,
  data: () => undefined,
  trailers: () => undefined,
  reset: () => undefined,
};

export class H2Stream {
  /** 0 until a client stream's HEADERS are sent (a stream past MAX_CONCURRENT_STREAMS waits). */
  id = 0;
  handler: H2StreamHandler = IGNORE;
  /** The caller's own per-stream state. */
  user: unknown = undefined;

  // State (RFC 9113 §5.1) as flags: open = neither ended; half-closed = one; closed = both or reset.
  headersSent = false;
  headersReceived = false;
  localEnded = false;
  remoteEnded = false;
  closed = false;
  /** RST_STREAM code when reset (either side), else undefined. */
  resetCode: number | undefined = undefined;

  // Flow control, owned by the connection.
  /** Octets the peer lets us send. */
  sendWindow = 0;
  /** Octets we let the peer send. */
  recvWindow = 0;
  /** Octets consumed and not yet returned with WINDOW_UPDATE. */
  recvUnacked = 0;
  /** Octets received while paused: returned on resume. */
  recvHeld = 0;
  paused = false;

  // The outbound queue: chunks waiting for window, then END_STREAM or trailers.
  queue: Buffer[] = [];
  queuedBytes = 0;
  queuedEnd = false;
  queuedTrailers: H2Fields | undefined = undefined;
  /** Headers of a client stream waiting for a stream slot. */
  pendingHeaders: H2Fields | undefined = undefined;
  /** `neverIndexed` of the queued trailers or pending headers. */
  queuedNeverIndexed: H2NeverIndexed = undefined;
  needDrain = false;

  constructor(readonly owner: H2StreamOwner) {}

  /** Response headers (server) or, for a stream made without them, request headers. */
  sendHeaders(fields: H2Fields, endStream = false, neverIndexed?: H2NeverIndexed): void {
    this.owner.sendHeaders(this, fields, endStream, neverIndexed);
  }

  /** Queues `chunk` as DATA; false when the queue is over its high-water mark (wait for `drain`). */
  write(chunk: Buffer): boolean {
    return this.owner.write(this, chunk, false);
  }

  /** Ends this side, after `chunk` if given (DATA with END_STREAM). */
  end(chunk?: Buffer): void {
    this.owner.write(this, chunk, true);
  }

  /** Ends this side with trailers (HEADERS with END_STREAM, after the queued DATA). */
  sendTrailers(fields: H2Fields, neverIndexed?: H2NeverIndexed): void {
    this.owner.sendTrailers(this, fields, neverIndexed);
  }

  /** RST_STREAM(`h2Code`, default CANCEL); idempotent. The handler's `reset` is called. */
  reset(h2Code = 0x8): void {
    this.owner.reset(this, h2Code);
  }

  /** Stops returning window for received DATA: the peer stops once the stream window is used. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.owner.resume(this);
  }
}
