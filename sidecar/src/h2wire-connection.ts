/**
 * One HTTP/2 connection over a socket, client or server role (RFC 9113), without Node's http2
 * core (docs/h2-lean.md). It does the preface, the SETTINGS exchange, flow control both ways
 * (WINDOW_UPDATE returned in batches, at half a window), stream ids and states,
 * MAX_CONCURRENT_STREAMS, header blocks (HEADERS + CONTINUATION, assembled under a size bound,
 * decoded with HPACK), PING, GOAWAY (graceful and on error), RST_STREAM, the idle timeout, and the
 * abuse limits of h2-limits.ts: Rapid Reset, SETTINGS/PING floods, CONTINUATION floods, refused
 * streams and invalid frames. A protocol error of the connection ends it with GOAWAY(code) and
 * every open stream's `reset`; one of a stream sends RST_STREAM(code).
 *
 * Writes within one turn of the event loop are corked into one writev.
 */
import type { Socket } from 'node:net';
import { HpackDecoder } from './hpack-decoder';
import { HpackEncoder } from './hpack-encoder';
import { HpackError } from './hpack-errors';
import {
  H2_CANCEL,
  H2_COMPRESSION_ERROR,
  H2_ENHANCE_YOUR_CALM,
  H2_FLOW_CONTROL_ERROR,
  H2_FRAME_SIZE_ERROR,
  H2_INTERNAL_ERROR,
  H2_NO_ERROR,
  H2_PROTOCOL_ERROR,
  H2_REFUSED_STREAM,
  H2_STREAM_CLOSED,
  H2WireConnectionError,
  H2WireStreamError,
} from './h2wire-errors';
import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW,
  decodeSettings,
  encodeDataHeader,
  encodeGoaway,
  encodeHeaderBlock,
  encodePing,
  encodeRstStream,
  encodeSettings,
  encodeWindowUpdate,
  FLAG_ACK,
  FLAG_END_HEADERS,
  FLAG_END_STREAM,
  FLAG_PADDED,
  FRAME_CONTINUATION,
  FRAME_DATA,
  FRAME_GOAWAY,
  FRAME_HEADERS,
  FRAME_PING,
  FRAME_PRIORITY,
  FRAME_PUSH_PROMISE,
  FRAME_RST_STREAM,
  FRAME_SETTINGS,
  FRAME_HEADER_LENGTH,
  FRAME_WINDOW_UPDATE,
  H2FrameParser,
  MAX_MAX_FRAME_SIZE,
  MAX_WINDOW,
  SETTINGS_ACK,
  SETTINGS_ENABLE_PUSH,
  SETTINGS_HEADER_TABLE_SIZE,
  SETTINGS_INITIAL_WINDOW_SIZE,
  SETTINGS_MAX_CONCURRENT_STREAMS,
  SETTINGS_MAX_FRAME_SIZE,
  SETTINGS_MAX_HEADER_LIST_SIZE,
  unpad,
  writeFrameHeader,
} from './h2wire-frame';
import { type H2Fields, type H2NeverIndexed, H2Stream, type H2StreamHandler, type H2StreamOwner } from './h2wire-stream';

export interface H2WireOptions {
  /** SETTINGS_MAX_CONCURRENT_STREAMS we advertise (streams the peer may open). Default 100. */
  readonly maxConcurrentStreams: number;
  /** SETTINGS_INITIAL_WINDOW_SIZE we advertise: each stream's receive window. Default 1 MiB. */
  readonly initialWindowSize: number;
  /** The connection's receive window (raised from 65535 with WINDOW_UPDATE at start). Default 16 MiB. */
  readonly connectionWindowSize: number;
  /** SETTINGS_MAX_FRAME_SIZE we advertise. Default 16384. */
  readonly maxFrameSize: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce (HPACK octets + 32 per field). Default 65536. */
  readonly maxHeaderListSize: number;
  /** Fields per header list. Default 200. */
  readonly maxHeaderCount: number;
  /** Octets of one header block (HEADERS + CONTINUATION) before GOAWAY(ENHANCE_YOUR_CALM). Default 2 × maxHeaderListSize. */
  readonly maxHeaderBlockBytes: number;
  /** CONTINUATION frames of one header block before GOAWAY(ENHANCE_YOUR_CALM). Default 64. */
  readonly maxContinuations: number;
  /** Peer-reset streams per window, before the response ended, that end the connection (Rapid Reset). Default 100. */
  readonly maxPrematureResets: number;
  readonly resetWindowMs: number;
  /** Streams refused over MAX_CONCURRENT_STREAMS before GOAWAY(ENHANCE_YOUR_CALM). Default 100. */
  readonly maxRejectedStreams: number;
  /** Stream errors the peer causes (malformed headers, DATA on a closed stream, ...) before GOAWAY. Default 100. */
  readonly maxInvalidFrames: number;
  /** Entries of one SETTINGS frame. Default 32. */
  readonly maxSettings: number;
  /** Control frames (SETTINGS/PING ACKs, RST_STREAM) queued unsent before GOAWAY(ENHANCE_YOUR_CALM). Default 1000. */
  readonly maxQueuedControlFrames: number;
  /** Octets queued per stream before `write` returns false. Default 64 KiB. */
  readonly streamHighWaterMark: number;
  /** No frame either way for this long: GOAWAY(NO_ERROR) and close; 0 never. Default 0. */
  readonly idleTimeoutMs: number;
}

export const DEFAULT_H2WIRE_OPTIONS: H2WireOptions = Object.freeze({
  maxConcurrentStreams: 100,
  initialWindowSize: 1 << 20,
  connectionWindowSize: 16 << 20,
  maxFrameSize: DEFAULT_MAX_FRAME_SIZE,
  maxHeaderListSize: 65536,
  maxHeaderCount: 200,
  maxHeaderBlockBytes: 131072,
  maxContinuations: 64,
  maxPrematureResets: 100,
  resetWindowMs: 10_000,
  maxRejectedStreams: 100,
  maxInvalidFrames: 100,
  maxSettings: 32,
  maxQueuedControlFrames: 1000,
  streamHighWaterMark: 65536,
  idleTimeoutMs: 0,
});

export interface H2WireEvents {
  /** Server role: a new stream's request headers. Set `stream.handler` before returning. */
  onStream?(stream: H2Stream, fields: H2Fields, endStream: boolean, neverIndexed?: H2NeverIndexed): void;
  /** The connection is over (`error` unless it ended cleanly); called once. */
  onClose?(error: H2WireConnectionError | undefined): void;
  /** The peer sent GOAWAY: no new streams on this connection. */
  onGoaway?(error: H2WireConnectionError): void;
}

/** Validates options once (STYLE.md): a value out of its RFC range is a programming error. */
export function h2WireOptions(partial: Partial<H2WireOptions> = {}): H2WireOptions {
  const o = { ...DEFAULT_H2WIRE_OPTIONS, ...partial };
  if (partial.maxHeaderBlockBytes === undefined) o.maxHeaderBlockBytes = 2 * o.maxHeaderListSize;
  const range = (name: keyof H2WireOptions, lo: number, hi: number) => {
    const v = o[name];
    if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`h2wire option ${name} must be an integer in [${lo}, ${hi}], got ${v}`);
  };
  range('initialWindowSize', 1, MAX_WINDOW);
  range('connectionWindowSize', DEFAULT_WINDOW, MAX_WINDOW);
  range('maxFrameSize', DEFAULT_MAX_FRAME_SIZE, MAX_MAX_FRAME_SIZE);
  range('maxConcurrentStreams', 0, MAX_WINDOW);
  return Object.freeze(o);
}

type Role = 'client' | 'server';

const RESET_BEFORE_CLOSE = (e: H2WireConnectionError) => new H2WireStreamError(e.reason, e.h2Code, e.message, e.remote);

export class H2WireConnection implements H2StreamOwner {
  readonly streams = new Map<number, H2Stream>();
  /** The error the connection ended with, once closed. */
  closeError: H2WireConnectionError | undefined;
  closed = false;

  private readonly parser: H2FrameParser;
  private readonly decoder: HpackDecoder;
  private readonly encoder = new HpackEncoder();
  private readonly opts: H2WireOptions;

  // Peer settings.
  private peerMaxConcurrent = Infinity;
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  private peerSettingsSeen = false;
  // Ours: the stream receive window in force (65535 until the peer ACKs our SETTINGS).
  private localInitialWindow = DEFAULT_WINDOW;
  private settingsAckPending = 0;

  // Connection flow control.
  private sendWindow = DEFAULT_WINDOW;
  private recvWindow = DEFAULT_WINDOW;
  private recvUnacked = 0;
  private readonly blocked = new Set<H2Stream>();

  // Stream ids.
  private nextOwnId: number;
  private lastPeerId = 0;
  private ownActive = 0;
  private peerActive = 0;
  private readonly waiting: H2Stream[] = [];

  // Header block being assembled.
  private blockStream = 0;
  private blockFlags = 0;
  private blockParts: Buffer[] = [];
  private blockBytes = 0;
  private blockFrames = 0;
  private blockSelfDependent = false;
  /** Streams this side reset lately: frames the peer sent before it saw our RST_STREAM are ignored. */
  private readonly recentlyReset = new Set<number>();

  // GOAWAY.
  private goawaySent = false;
  private goawayReceived = false;
  private peerLastStreamId = MAX_WINDOW;

  // Abuse counters.
  private windowStart = performance.now();
  private windowStreams = 0;
  private windowResets = 0;
  private rejected = 0;
  private invalid = 0;
  private controlQueued = 0;

  // Output.
  private corked = false;
  private readonly uncork = (): void => {
    this.corked = false;
    this.socket.uncork();
    if (this.socket.writableLength === 0) this.controlQueued = 0;
  };

  constructor(
    readonly socket: Socket,
    readonly role: Role,
    private readonly events: H2WireEvents = {},
    options: H2WireOptions = DEFAULT_H2WIRE_OPTIONS,
  ) {
    this.opts = options;
    this.nextOwnId = role === 'client' ? 1 : 2;
    this.decoder = new HpackDecoder({ maxHeaderListSize: options.maxHeaderListSize, maxHeaderCount: options.maxHeaderCount });
    this.parser = new H2FrameParser(this.onFrame, role === 'server');
    this.parser.maxFrameSize = options.maxFrameSize;
    socket.setNoDelay(true);
    socket.on('data', this.onData);
    socket.on('drain', this.onDrain);
    socket.on('error', () => this.destroyWith(new H2WireConnectionError('socket-error', H2_INTERNAL_ERROR, 'socket error', true)));
    socket.on('close', () => this.destroyWith(new H2WireConnectionError('socket-closed', H2_NO_ERROR, 'the socket closed', true)));
    if (options.idleTimeoutMs > 0) {
      socket.setTimeout(options.idleTimeoutMs, () => this.fail(new H2WireConnectionError('idle', H2_NO_ERROR, `no frame for ${options.idleTimeoutMs} ms`)));
    }
    const settings: Array<[number, number]> = [
      [SETTINGS_MAX_CONCURRENT_STREAMS, options.maxConcurrentStreams],
      [SETTINGS_INITIAL_WINDOW_SIZE, options.initialWindowSize],
      [SETTINGS_MAX_HEADER_LIST_SIZE, options.maxHeaderListSize],
    ];
    if (options.maxFrameSize !== DEFAULT_MAX_FRAME_SIZE) settings.push([SETTINGS_MAX_FRAME_SIZE, options.maxFrameSize]);
    if (role === 'client') {
      settings.push([SETTINGS_ENABLE_PUSH, 0]);
      this.out(CLIENT_PREFACE);
    }
    this.out(encodeSettings(settings));
    this.settingsAckPending++;
    if (options.connectionWindowSize > DEFAULT_WINDOW) {
      this.out(encodeWindowUpdate(0, options.connectionWindowSize - DEFAULT_WINDOW));
      this.recvWindow = options.connectionWindowSize;
    }
  }

  /** Streams open on this connection. */
  get activeStreams(): number {
    return this.ownActive + this.peerActive;
  }

  /** Whether `request` can be called (client role: not closed, no GOAWAY either way). */
  get canRequest(): boolean {
    return !this.closed && !this.goawaySent && !this.goawayReceived;
  }

  /**
   * Client role: a new stream with request `fields`. Past the peer's MAX_CONCURRENT_STREAMS it
   * waits (id 0) until a stream closes; its writes queue meanwhile.
   */
  request(fields: H2Fields, endStream: boolean, handler: H2StreamHandler, user?: unknown, neverIndexed?: H2NeverIndexed): H2Stream {
    if (this.role !== 'client') throw new Error('request() is for the client role');
    if (!this.canRequest) throw this.closeError ?? new H2WireConnectionError('goaway', H2_REFUSED_STREAM, 'the connection is closing');
    const stream = new H2Stream(this);
    stream.handler = handler;
    stream.user = user;
    stream.localEnded = endStream;
    stream.headersSent = true;
    if (this.ownActive >= this.peerMaxConcurrent) {
      stream.pendingHeaders = fields;
      stream.queuedNeverIndexed = neverIndexed;
      this.waiting.push(stream);
      return stream;
    }
    this.open(stream, fields, endStream, neverIndexed);
    return stream;
  }

  /** Graceful close: GOAWAY(NO_ERROR, last stream the peer opened), no new streams, end when the open ones end. */
  close(): void {
    if (this.closed || this.goawaySent) return;
    this.goawaySent = true;
    this.out(encodeGoaway(this.lastPeerId, H2_NO_ERROR));
    this.maybeFinish();
  }

  /** Ends now: GOAWAY(`h2Code`) unless the socket is gone, every open stream reset. Idempotent. */
  destroy(h2Code = H2_CANCEL): void {
    this.fail(new H2WireConnectionError('destroyed', h2Code, 'closed by this side'));
  }

  /**
   * Bytes already read from the socket before this connection took it (protocol detection's
   * look-ahead), parsed as if they had just arrived.
   */
  feed(head: Buffer): void {
    if (head.length > 0) this.onData(head);
  }

  ping(): void {
    this.out(encodePing(Buffer.alloc(8), false));
  }

  // --- stream owner --------------------------------------------------------------------------

  sendHeaders(stream: H2Stream, fields: H2Fields, endStream: boolean, neverIndexed?: H2NeverIndexed): void {
    if (stream.headersSent || stream.closed) return;
    this.writeHeaders(stream.id, fields, endStream, neverIndexed); // throws on bad fields, before any state changes
    stream.headersSent = true;
    stream.localEnded = endStream;
    if (endStream) this.maybeClose(stream);
  }

  write(stream: H2Stream, chunk: Buffer | undefined, endStream: boolean): boolean {
    if (stream.closed || stream.localEnded || stream.queuedEnd) return false;
    if (!stream.headersSent) throw new Error(`h2wire: DATA before HEADERS on stream ${stream.id}`);
    if (endStream && chunk && stream.id !== 0 && stream.queue.length === 0 && chunk.length <= Math.min(stream.sendWindow, this.sendWindow, this.peerMaxFrameSize)) {
      // The common end of a small body: one DATA frame with END_STREAM.
      this.out(encodeDataHeader(chunk.length, true, stream.id));
      if (chunk.length > 0) this.out(chunk);
      stream.sendWindow -= chunk.length;
      this.sendWindow -= chunk.length;
      stream.localEnded = true;
      this.maybeClose(stream);
      return true;
    }
    if (chunk && chunk.length > 0) {
      if (stream.id === 0 || stream.queue.length > 0) {
        stream.queue.push(chunk);
        stream.queuedBytes += chunk.length;
      } else this.sendData(stream, chunk);
    }
    if (endStream) {
      stream.queuedEnd = true;
      this.flushStream(stream);
    }
    const ok = stream.queuedBytes < this.opts.streamHighWaterMark && !this.socket.writableNeedDrain;
    if (!ok) stream.needDrain = true;
    return ok;
  }

  sendTrailers(stream: H2Stream, fields: H2Fields, neverIndexed?: H2NeverIndexed): void {
    if (stream.closed || stream.localEnded || stream.queuedEnd) return;
    stream.queuedEnd = true;
    stream.queuedTrailers = fields;
    stream.queuedNeverIndexed = neverIndexed;
    this.flushStream(stream);
  }

  reset(stream: H2Stream, h2Code: number): void {
    if (stream.closed) return;
    this.resetStream(stream, new H2WireStreamError('reset', h2Code, `reset by this side`));
  }

  resume(stream: H2Stream): void {
    if (stream.recvHeld === 0 || stream.closed) return;
    stream.recvUnacked += stream.recvHeld;
    stream.recvHeld = 0;
    this.returnStreamWindow(stream);
  }

  // --- output --------------------------------------------------------------------------------

  private out(buf: Buffer): void {
    if (this.socket.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    this.socket.write(buf);
  }

  /** A frame answering the peer (ACK, RST_STREAM): past `maxQueuedControlFrames` unsent, the peer is flooding. */
  private control(buf: Buffer): void {
    if (++this.controlQueued > this.opts.maxQueuedControlFrames) {
      throw new H2WireConnectionError('control-flood', H2_ENHANCE_YOUR_CALM, `over ${this.opts.maxQueuedControlFrames} control frames queued unread`);
    }
    this.out(buf);
  }

  /** HEADERS (+ CONTINUATION when longer than the peer's max frame size); the usual one frame is encoded in place. */
  private writeHeaders(id: number, fields: H2Fields, endStream: boolean, neverIndexed?: H2NeverIndexed): void {
    const buf = this.encoder.encode(fields, FRAME_HEADER_LENGTH, neverIndexed);
    const length = buf.length - FRAME_HEADER_LENGTH;
    if (length > this.peerMaxFrameSize) return this.out(encodeHeaderBlock(id, buf.subarray(FRAME_HEADER_LENGTH), endStream, this.peerMaxFrameSize));
    writeFrameHeader(buf, 0, length, FRAME_HEADERS, FLAG_END_HEADERS | (endStream ? FLAG_END_STREAM : 0), id);
    this.out(buf);
  }

  private open(stream: H2Stream, fields: H2Fields, endStream: boolean, neverIndexed?: H2NeverIndexed): void {
    this.writeHeaders(this.nextOwnId, fields, endStream, neverIndexed); // throws on bad fields, before any state changes
    stream.id = this.nextOwnId;
    this.nextOwnId += 2;
    stream.sendWindow = this.peerInitialWindow;
    stream.recvWindow = this.localInitialWindow;
    this.ownActive++;
    this.streams.set(stream.id, stream);
    if (stream.queue.length > 0 || stream.queuedEnd) this.flushStream(stream);
  }

  /** Sends as much of `chunk` as the windows allow; queues the rest. */
  private sendData(stream: H2Stream, chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(chunk.length - off, stream.sendWindow, this.sendWindow, this.peerMaxFrameSize);
      if (n <= 0) break;
      this.out(encodeDataHeader(n, false, stream.id));
      this.out(off === 0 && n === chunk.length ? chunk : chunk.subarray(off, off + n));
      stream.sendWindow -= n;
      this.sendWindow -= n;
      off += n;
    }
    if (off < chunk.length) {
      const rest = off === 0 ? chunk : chunk.subarray(off);
      stream.queue.unshift(rest);
      stream.queuedBytes += rest.length;
      this.blocked.add(stream);
    }
  }

  /** Sends the queue of `stream` as far as the windows allow, then END_STREAM or trailers. */
  private flushStream(stream: H2Stream): void {
    if (stream.id === 0 || stream.closed) return;
    while (stream.queue.length > 0) {
      const chunk = stream.queue.shift()!;
      stream.queuedBytes -= chunk.length;
      this.sendData(stream, chunk);
      if (this.blocked.has(stream)) return;
    }
    if (stream.queuedEnd && !stream.localEnded) {
      stream.localEnded = true;
      if (stream.queuedTrailers) this.writeHeaders(stream.id, stream.queuedTrailers, true, stream.queuedNeverIndexed);
      else this.out(encodeDataHeader(0, true, stream.id));
      stream.queuedTrailers = undefined;
      stream.queuedNeverIndexed = undefined;
      this.maybeClose(stream);
    }
    if (stream.needDrain && stream.queuedBytes < this.opts.streamHighWaterMark && !this.socket.writableNeedDrain && !stream.closed) {
      stream.needDrain = false;
      stream.handler.drain?.(stream);
    }
  }

  private flushBlocked(): void {
    if (this.blocked.size === 0) return;
    const streams = [...this.blocked];
    this.blocked.clear();
    for (const s of streams) {
      if (this.sendWindow <= 0) {
        this.blocked.add(s);
        continue;
      }
      this.flushStream(s);
    }
  }

  private readonly onDrain = (): void => {
    this.controlQueued = 0;
    for (const s of this.streams.values()) {
      if (s.needDrain && s.queuedBytes < this.opts.streamHighWaterMark) {
        s.needDrain = false;
        s.handler.drain?.(s);
      }
    }
  };

  // --- input ---------------------------------------------------------------------------------

  private readonly onData = (chunk: Buffer): void => {
    try {
      this.parser.push(chunk);
    } catch (e) {
      this.fail(e instanceof H2WireConnectionError ? e : new H2WireConnectionError('internal', H2_INTERNAL_ERROR, String((e as Error)?.stack ?? e)));
    }
  };

  private readonly onFrame = (type: number, flags: number, id: number, payload: Buffer): void => {
    if (this.closed) return;
    if (!this.peerSettingsSeen && (type !== FRAME_SETTINGS || flags & FLAG_ACK)) {
      throw new H2WireConnectionError('no-settings', H2_PROTOCOL_ERROR, 'the first frame was not SETTINGS');
    }
    if (this.blockStream !== 0 && (type !== FRAME_CONTINUATION || id !== this.blockStream)) {
      throw new H2WireConnectionError('interrupted-header-block', H2_PROTOCOL_ERROR, 'a frame other than CONTINUATION inside a header block');
    }
    try {
      switch (type) {
        case FRAME_DATA:
          return this.onDataFrame(flags, id, payload);
        case FRAME_HEADERS:
          return this.onHeadersFrame(flags, id, payload);
        case FRAME_CONTINUATION:
          return this.onContinuation(flags, id, payload);
        case FRAME_PRIORITY:
          if (id === 0) throw new H2WireConnectionError('priority-stream-0', H2_PROTOCOL_ERROR, 'PRIORITY on stream 0');
          if (payload.length !== 5) throw new H2WireStreamError('priority-size', H2_FRAME_SIZE_ERROR, 'PRIORITY length not 5');
          if ((payload.readUInt32BE(0) & MAX_WINDOW) === id) throw new H2WireStreamError('self-dependency', H2_PROTOCOL_ERROR, `stream ${id} depends on itself`);
          return;
        case FRAME_RST_STREAM:
          return this.onRstStream(id, payload);
        case FRAME_SETTINGS:
          return this.onSettings(flags, id, payload);
        case FRAME_PUSH_PROMISE:
          throw new H2WireConnectionError('push-promise', H2_PROTOCOL_ERROR, 'PUSH_PROMISE refused (SETTINGS_ENABLE_PUSH 0)');
        case FRAME_PING:
          if (id !== 0) throw new H2WireConnectionError('ping-stream', H2_PROTOCOL_ERROR, 'PING on a stream');
          if (payload.length !== 8) throw new H2WireConnectionError('ping-size', H2_FRAME_SIZE_ERROR, 'PING length not 8');
          if (!(flags & FLAG_ACK)) this.control(encodePing(payload, true));
          return;
        case FRAME_GOAWAY:
          return this.onGoawayFrame(id, payload);
        case FRAME_WINDOW_UPDATE:
          return this.onWindowUpdate(id, payload);
        default:
          return; // unknown frame types are ignored (RFC 9113 §4.1)
      }
    } catch (e) {
      if (!(e instanceof H2WireStreamError)) throw e;
      this.streamError(id, e);
    }
  };

  /** A stream error the peer caused: RST_STREAM, counted as an invalid frame. */
  private streamError(id: number, e: H2WireStreamError): void {
    if (++this.invalid > this.opts.maxInvalidFrames) {
      throw new H2WireConnectionError('invalid-frames', H2_ENHANCE_YOUR_CALM, `over ${this.opts.maxInvalidFrames} invalid frames (last: ${e.reason})`);
    }
    const stream = this.streams.get(id);
    if (stream) this.resetStream(stream, e);
    else this.rememberReset(id, e.h2Code);
  }

  /** Whether `id` is a stream that existed and is closed now (not idle). */
  private wasOpened(id: number): boolean {
    const own = (id & 1) === (this.role === 'client' ? 1 : 0);
    return own ? id < this.nextOwnId : id <= this.lastPeerId;
  }

  private onDataFrame(flags: number, id: number, payload: Buffer): void {
    if (id === 0) throw new H2WireConnectionError('data-stream-0', H2_PROTOCOL_ERROR, 'DATA on stream 0');
    const length = payload.length;
    if (length > this.recvWindow) throw new H2WireConnectionError('flow-control', H2_FLOW_CONTROL_ERROR, 'DATA past the connection window');
    this.recvWindow -= length;
    this.recvUnacked += length;
    if (this.recvUnacked >= this.opts.connectionWindowSize >>> 1) {
      this.out(encodeWindowUpdate(0, this.recvUnacked));
      this.recvWindow += this.recvUnacked;
      this.recvUnacked = 0;
    }
    const stream = this.streams.get(id);
    if (!stream) {
      if (this.recentlyReset.has(id)) return;
      if (!this.wasOpened(id)) throw new H2WireConnectionError('data-idle-stream', H2_PROTOCOL_ERROR, `DATA on idle stream ${id}`);
      throw new H2WireStreamError('data-closed-stream', H2_STREAM_CLOSED, `DATA on closed stream ${id}`);
    }
    if (stream.remoteEnded || !stream.headersReceived) {
      throw new H2WireStreamError('data-closed-stream', H2_STREAM_CLOSED, `DATA on stream ${id} after its END_STREAM or before its HEADERS`);
    }
    if (length > stream.recvWindow) throw new H2WireStreamError('flow-control', H2_FLOW_CONTROL_ERROR, 'DATA past the stream window');
    stream.recvWindow -= length;
    const { body } = flags & FLAG_PADDED ? unpad(FRAME_DATA, flags, id, payload) : { body: payload };
    const end = (flags & FLAG_END_STREAM) !== 0;
    // Padding is consumed at once; the body when the stream is not paused.
    if (stream.paused) {
      stream.recvHeld += body.length;
      stream.recvUnacked += length - body.length;
    } else stream.recvUnacked += length;
    if (end) stream.remoteEnded = true;
    else this.returnStreamWindow(stream);
    if (body.length === 0 && !end && length === 0) {
      if (++this.invalid > this.opts.maxInvalidFrames) throw new H2WireConnectionError('empty-data-flood', H2_ENHANCE_YOUR_CALM, 'too many empty DATA frames');
      return;
    }
    stream.handler.data(stream, body, end);
    if (end) this.maybeClose(stream);
  }

  private returnStreamWindow(stream: H2Stream): void {
    if (stream.remoteEnded || stream.recvUnacked < this.localInitialWindow >>> 1) return;
    this.out(encodeWindowUpdate(stream.id, stream.recvUnacked));
    stream.recvWindow += stream.recvUnacked;
    stream.recvUnacked = 0;
  }

  private onHeadersFrame(flags: number, id: number, payload: Buffer): void {
    if (id === 0) throw new H2WireConnectionError('headers-stream-0', H2_PROTOCOL_ERROR, 'HEADERS on stream 0');
    const { body, dependency } = unpad(FRAME_HEADERS, flags, id, payload);
    this.blockSelfDependent = dependency === id;
    if (flags & FLAG_END_HEADERS) return this.onHeaderBlock(id, flags, body);
    this.blockStream = id;
    this.blockFlags = flags;
    this.blockParts = [Buffer.from(body)];
    this.blockBytes = body.length;
    this.blockFrames = 0;
    this.checkBlock();
  }

  private onContinuation(flags: number, id: number, payload: Buffer): void {
    if (this.blockStream === 0 || id !== this.blockStream) {
      throw new H2WireConnectionError('unexpected-continuation', H2_PROTOCOL_ERROR, 'CONTINUATION without HEADERS');
    }
    this.blockParts.push(Buffer.from(payload));
    this.blockBytes += payload.length;
    this.blockFrames++;
    this.checkBlock();
    if (!(flags & FLAG_END_HEADERS)) return;
    const block = Buffer.concat(this.blockParts, this.blockBytes);
    this.blockStream = 0;
    this.blockParts = [];
    this.onHeaderBlock(id, this.blockFlags, block);
  }

  private checkBlock(): void {
    if (this.blockBytes > this.opts.maxHeaderBlockBytes || this.blockFrames > this.opts.maxContinuations) {
      throw new H2WireConnectionError('continuation-flood', H2_ENHANCE_YOUR_CALM, `header block over ${this.opts.maxHeaderBlockBytes} octets or ${this.opts.maxContinuations} CONTINUATION frames`);
    }
  }

  /** HPACK-decodes a block: a COMPRESSION_ERROR ends the connection; a list too large only the stream. */
  private decodeBlock(id: number, block: Uint8Array): H2Fields | H2WireStreamError {
    try {
      return this.decoder.decode(block);
    } catch (e) {
      if (e instanceof HpackError && e.code === 'HEADER_LIST_TOO_LARGE') return new H2WireStreamError('header-list-too-large', H2_PROTOCOL_ERROR, e.message);
      if (e instanceof HpackError) throw new H2WireConnectionError('compression', H2_COMPRESSION_ERROR, `stream ${id}: ${e.message}`);
      throw e;
    }
  }

  private onHeaderBlock(id: number, flags: number, block: Uint8Array): void {
    const decoded = this.decodeBlock(id, block);
    const end = (flags & FLAG_END_STREAM) !== 0;
    const stream = this.streams.get(id);
    if (this.blockSelfDependent) {
      if (!stream && this.role === 'server' && id & 1 && id > this.lastPeerId) this.lastPeerId = id;
      throw new H2WireStreamError('self-dependency', H2_PROTOCOL_ERROR, `stream ${id} depends on itself`);
    }
    if (stream) return this.onStreamHeaders(stream, decoded, end);
    if (this.recentlyReset.has(id)) return;
    const peerParity = this.role === 'server' ? 1 : 0;
    if ((id & 1) !== peerParity || this.role === 'client') {
      if (this.wasOpened(id)) throw new H2WireStreamError('headers-closed-stream', H2_STREAM_CLOSED, `HEADERS on closed stream ${id}`);
      throw new H2WireConnectionError('bad-stream-id', H2_PROTOCOL_ERROR, `HEADERS opening stream ${id}`);
    }
    if (id <= this.lastPeerId) throw new H2WireConnectionError('headers-closed-stream', H2_STREAM_CLOSED, `HEADERS on closed stream ${id}`);
    this.lastPeerId = id;
    if (this.goawaySent) return this.rememberReset(id, H2_REFUSED_STREAM);
    if (this.peerActive >= this.opts.maxConcurrentStreams) {
      if (++this.rejected > this.opts.maxRejectedStreams) throw new H2WireConnectionError('refused-streams', H2_ENHANCE_YOUR_CALM, `over ${this.opts.maxRejectedStreams} streams refused`);
      return this.rememberReset(id, H2_REFUSED_STREAM);
    }
    if (decoded instanceof H2WireStreamError) {
      // A header list over our limits: answered 431 as HTTP/1 would be (h2-limits.ts), the request body refused.
      this.writeHeaders(id, [':status', '431', 'content-length', '0'], true);
      if (!end) this.rememberReset(id, H2_NO_ERROR);
      return;
    }
    const bad = checkFields(decoded, 'request');
    if (bad) throw new H2WireStreamError('malformed-request', H2_PROTOCOL_ERROR, bad);
    const s = new H2Stream(this);
    s.id = id;
    s.sendWindow = this.peerInitialWindow;
    s.recvWindow = this.localInitialWindow;
    s.headersReceived = true;
    s.remoteEnded = end;
    this.streams.set(id, s);
    this.peerActive++;
    this.rollWindow();
    this.windowStreams++;
    this.events.onStream?.(s, decoded, end, this.decoder.neverIndexed);
    if (end) this.maybeClose(s);
  }

  private onStreamHeaders(stream: H2Stream, decoded: H2Fields | H2WireStreamError, end: boolean): void {
    if (stream.remoteEnded) throw new H2WireStreamError('headers-closed-stream', H2_STREAM_CLOSED, `HEADERS on stream ${stream.id} after its END_STREAM`);
    if (decoded instanceof H2WireStreamError) throw decoded;
    if (!stream.headersReceived) {
      const bad = checkFields(decoded, 'response');
      if (bad) throw new H2WireStreamError('malformed-response', H2_PROTOCOL_ERROR, bad);
      // 1xx: informational, more headers follow (RFC 9113 §8.1).
      if (decoded[1]!.charCodeAt(0) === 0x31 && !end) return;
      stream.headersReceived = true;
      stream.remoteEnded = end;
      stream.handler.headers(stream, decoded, end, this.decoder.neverIndexed);
    } else {
      if (!end) throw new H2WireStreamError('trailers-without-end', H2_PROTOCOL_ERROR, 'trailers without END_STREAM');
      const bad = checkFields(decoded, 'trailers');
      if (bad) throw new H2WireStreamError('malformed-trailers', H2_PROTOCOL_ERROR, bad);
      stream.remoteEnded = true;
      stream.handler.trailers(stream, decoded, this.decoder.neverIndexed);
    }
    if (end) this.maybeClose(stream);
  }

  private onRstStream(id: number, payload: Buffer): void {
    if (payload.length !== 4) throw new H2WireConnectionError('rst-size', H2_FRAME_SIZE_ERROR, 'RST_STREAM length not 4');
    if (id === 0 || !this.wasOpened(id)) throw new H2WireConnectionError('rst-idle-stream', H2_PROTOCOL_ERROR, `RST_STREAM on idle stream ${id}`);
    const stream = this.streams.get(id);
    if (!stream) return;
    const code = payload.readUInt32BE(0);
    const premature = this.role === 'server' && !stream.localEnded;
    this.resetStream(stream, new H2WireStreamError('peer-reset', code, `stream ${id}`, true), false);
    if (!premature) return;
    this.rollWindow();
    this.windowResets++;
    if (this.windowResets > this.opts.maxPrematureResets && this.windowResets * 2 >= this.windowStreams) {
      throw new H2WireConnectionError('rapid-reset', H2_ENHANCE_YOUR_CALM, `${this.windowResets} streams reset by the client within ${this.opts.resetWindowMs} ms`);
    }
  }

  private rollWindow(): void {
    const now = performance.now();
    if (now - this.windowStart < this.opts.resetWindowMs) return;
    this.windowStart = now;
    this.windowStreams = 0;
    this.windowResets = 0;
  }

  private onSettings(flags: number, id: number, payload: Buffer): void {
    if (id !== 0) throw new H2WireConnectionError('settings-stream', H2_PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & FLAG_ACK) {
      if (payload.length !== 0) throw new H2WireConnectionError('settings-ack-size', H2_FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      if (this.settingsAckPending > 0 && --this.settingsAckPending === 0) this.applyLocalWindow();
      return;
    }
    const entries = decodeSettings(payload);
    if (entries.length > this.opts.maxSettings) throw new H2WireConnectionError('settings-flood', H2_ENHANCE_YOUR_CALM, `SETTINGS with over ${this.opts.maxSettings} entries`);
    this.peerSettingsSeen = true;
    for (const [key, value] of entries) {
      switch (key) {
        case SETTINGS_HEADER_TABLE_SIZE:
          this.encoder.setMaxTableSize(Math.min(value, 4096));
          break;
        case SETTINGS_ENABLE_PUSH:
          if (value > 1) throw new H2WireConnectionError('bad-setting', H2_PROTOCOL_ERROR, 'SETTINGS_ENABLE_PUSH over 1');
          break;
        case SETTINGS_MAX_CONCURRENT_STREAMS:
          this.peerMaxConcurrent = value;
          break;
        case SETTINGS_INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW) throw new H2WireConnectionError('bad-setting', H2_FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1');
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const s of this.streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > MAX_WINDOW) throw new H2WireConnectionError('flow-control', H2_FLOW_CONTROL_ERROR, 'a stream window over 2^31-1');
            if (delta > 0 && s.queue.length + (s.queuedEnd ? 1 : 0) > 0) this.blocked.add(s);
          }
          break;
        }
        case SETTINGS_MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_MAX_FRAME_SIZE) throw new H2WireConnectionError('bad-setting', H2_PROTOCOL_ERROR, 'SETTINGS_MAX_FRAME_SIZE out of range');
          this.peerMaxFrameSize = value;
          break;
        default:
          break; // SETTINGS_MAX_HEADER_LIST_SIZE is advisory; unknown settings are ignored
      }
    }
    this.control(SETTINGS_ACK);
    this.flushBlocked();
    this.openWaiting();
  }

  private applyLocalWindow(): void {
    const delta = this.opts.initialWindowSize - this.localInitialWindow;
    if (delta === 0) return;
    this.localInitialWindow = this.opts.initialWindowSize;
    for (const s of this.streams.values()) s.recvWindow += delta;
  }

  private onGoawayFrame(id: number, payload: Buffer): void {
    if (id !== 0) throw new H2WireConnectionError('goaway-stream', H2_PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (payload.length < 8) throw new H2WireConnectionError('goaway-size', H2_FRAME_SIZE_ERROR, 'GOAWAY shorter than 8');
    const last = payload.readUInt32BE(0) & MAX_WINDOW;
    const code = payload.readUInt32BE(4);
    const debug = payload.subarray(8).toString('utf8');
    const err = new H2WireConnectionError('goaway', code, `last stream ${last}${debug ? `: ${debug}` : ''}`, true);
    this.goawayReceived = true;
    this.peerLastStreamId = Math.min(this.peerLastStreamId, last);
    // Our streams past `last` were never processed: refused, safe to retry elsewhere.
    for (const s of [...this.streams.values()]) {
      const own = (s.id & 1) === (this.role === 'client' ? 1 : 0);
      if (own && s.id > this.peerLastStreamId) this.resetStream(s, new H2WireStreamError('goaway', H2_REFUSED_STREAM, `stream ${s.id} past GOAWAY's last stream ${last}`, true), false);
    }
    for (const s of this.waiting.splice(0)) {
      s.closed = true;
      s.handler.reset(s, new H2WireStreamError('goaway', H2_REFUSED_STREAM, 'not sent: the peer sent GOAWAY', true));
    }
    this.events.onGoaway?.(err);
    if (code !== H2_NO_ERROR) this.closeError = err;
    this.maybeFinish();
  }

  private onWindowUpdate(id: number, payload: Buffer): void {
    if (payload.length !== 4) throw new H2WireConnectionError('window-update-size', H2_FRAME_SIZE_ERROR, 'WINDOW_UPDATE length not 4');
    const inc = payload.readUInt32BE(0) & MAX_WINDOW;
    if (id === 0) {
      if (inc === 0) throw new H2WireConnectionError('window-update-zero', H2_PROTOCOL_ERROR, 'WINDOW_UPDATE of 0 on the connection');
      this.sendWindow += inc;
      if (this.sendWindow > MAX_WINDOW) throw new H2WireConnectionError('flow-control', H2_FLOW_CONTROL_ERROR, 'connection window over 2^31-1');
      return this.flushBlocked();
    }
    const stream = this.streams.get(id);
    if (!stream) {
      if (!this.wasOpened(id)) throw new H2WireConnectionError('window-update-idle', H2_PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${id}`);
      return; // a closed stream: ignored
    }
    if (inc === 0) throw new H2WireStreamError('window-update-zero', H2_PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
    stream.sendWindow += inc;
    if (stream.sendWindow > MAX_WINDOW) throw new H2WireStreamError('flow-control', H2_FLOW_CONTROL_ERROR, 'stream window over 2^31-1');
    if (this.blocked.delete(stream)) this.flushStream(stream);
  }

  // --- lifecycle -----------------------------------------------------------------------------

  private maybeClose(stream: H2Stream): void {
    if (stream.closed || !stream.localEnded || !stream.remoteEnded) return;
    this.forget(stream);
    stream.handler.close?.(stream);
    this.maybeFinish();
  }

  private forget(stream: H2Stream): void {
    stream.closed = true;
    this.blocked.delete(stream);
    stream.queue = [];
    stream.queuedBytes = 0;
    if (stream.id === 0) {
      const i = this.waiting.indexOf(stream);
      if (i >= 0) this.waiting.splice(i, 1);
      return;
    }
    this.streams.delete(stream.id);
    const own = (stream.id & 1) === (this.role === 'client' ? 1 : 0);
    if (own) this.ownActive--;
    else this.peerActive--;
    this.openWaiting();
  }

  private openWaiting(): void {
    while (this.waiting.length > 0 && this.ownActive < this.peerMaxConcurrent && !this.goawayReceived && !this.closed) {
      const s = this.waiting.shift()!;
      const fields = s.pendingHeaders!;
      s.pendingHeaders = undefined;
      const neverIndexed = s.queuedNeverIndexed;
      s.queuedNeverIndexed = undefined;
      try {
        this.open(s, fields, s.localEnded, neverIndexed);
      } catch (e) {
        // Fields the encoder refused: this stream fails alone, as it would have in `request`.
        s.closed = true;
        s.handler.reset(s, new H2WireStreamError('bad-fields', H2_INTERNAL_ERROR, String((e as Error).message)));
      }
    }
  }

  /** Resets `stream`: RST_STREAM unless the peer sent it (`send` false), then its handler's `reset`. */
  private resetStream(stream: H2Stream, err: H2WireStreamError, send = true): void {
    if (stream.closed) return;
    stream.resetCode = err.h2Code;
    if (send && stream.id !== 0) this.rememberReset(stream.id, err.h2Code, false);
    this.forget(stream);
    stream.handler.reset(stream, err);
    this.maybeFinish();
  }

  /**
   * Sends RST_STREAM for `id` and ignores the frames the peer had in flight for it. One answering
   * the peer (`answer`) counts against the control-frame flood bound; one this side's app asked
   * for does not (it must never throw into the app).
   */
  private rememberReset(id: number, h2Code: number, answer = true): void {
    if (answer) this.control(encodeRstStream(id, h2Code));
    else this.out(encodeRstStream(id, h2Code));
    this.recentlyReset.add(id);
    if (this.recentlyReset.size > 1024) this.recentlyReset.delete(this.recentlyReset.values().next().value as number);
  }

  /** After GOAWAY either way, the connection ends once its streams have. */
  private maybeFinish(): void {
    if (this.closed || (!this.goawaySent && !this.goawayReceived) || this.streams.size > 0 || this.waiting.length > 0) return;
    this.closed = true;
    this.socket.end();
    this.events.onClose?.(this.closeError);
  }

  /** A connection error: GOAWAY(code) with the last stream the peer opened, then close. */
  private fail(err: H2WireConnectionError): void {
    if (this.closed) return;
    if (!this.socket.destroyed) {
      this.goawaySent = true;
      this.out(encodeGoaway(this.lastPeerId, err.h2Code, err.reason));
      this.socket.end();
      // A peer that never reads must not keep the socket: give the GOAWAY a moment to leave.
      setTimeout(() => this.socket.destroy(), 1000).unref();
    }
    this.destroyWith(err);
  }

  private destroyWith(err: H2WireConnectionError): void {
    if (this.closed) return;
    this.closed = true;
    this.closeError = err;
    const streamErr = RESET_BEFORE_CLOSE(err);
    for (const s of [...this.streams.values(), ...this.waiting]) {
      if (s.closed) continue;
      s.resetCode = err.h2Code;
      s.closed = true;
      s.handler.reset(s, streamErr);
    }
    this.streams.clear();
    this.waiting.length = 0;
    this.blocked.clear();
    if (err.remote) this.socket.destroy();
    this.events.onClose?.(err);
  }
}

const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/**
 * Why a field section is malformed (RFC 9113 §8.2, §8.3), or undefined: upper-case names,
 * connection-specific fields, `te` other than `trailers`, pseudo-headers after regular fields, in
 * trailers, unknown for the kind, or missing (`:method`, `:scheme`, `:path` in a request but
 * CONNECT; `:status` in a response).
 */
export function checkFields(fields: H2Fields, kind: 'request' | 'response' | 'trailers'): string | undefined {
  let regular = false;
  let method = '';
  let path = false;
  let scheme = false;
  let status = false;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i]!;
    if (name.length === 0) return 'empty field name';
    if (name.charCodeAt(0) === 0x3a) {
      if (regular || kind === 'trailers') return `pseudo-header ${name} after regular fields or in trailers`;
      if (kind === 'response') {
        if (name !== ':status' || status) return `pseudo-header ${name} in a response`;
        status = true;
        continue;
      }
      if (name === ':method' && !method) method = fields[i + 1]!;
      else if (name === ':path' && !path) path = fields[i + 1]!.length > 0;
      else if (name === ':scheme' && !scheme) scheme = true;
      else if (name !== ':authority' && name !== ':protocol') return `pseudo-header ${name} unknown or repeated`;
      continue;
    }
    regular = true;
    for (let j = 0; j < name.length; j++) {
      const c = name.charCodeAt(j);
      if (c >= 0x41 && c <= 0x5a) return `upper-case field name ${name}`;
    }
    if (CONNECTION_SPECIFIC.has(name)) return `connection-specific field ${name}`;
    if (name === 'te' && fields[i + 1] !== 'trailers') return 'te other than trailers';
  }
  if (kind === 'request' && method !== 'CONNECT' && (!method || !path || !scheme)) return 'request without :method, :scheme or :path';
  if (kind === 'response' && (!status || fields[0] !== ':status')) return 'response without :status';
  return undefined;
}
