/**
 * HTTP/2 frames (RFC 9113 §4, §6): the 9-octet header, encoders for every frame type this layer
 * sends, payload decoders for the ones it receives, and `H2FrameParser`, a streaming parser over
 * socket chunks. A frame wholly inside one chunk is handed on as a `subarray` of that chunk (DATA
 * payloads are never copied then); only a frame split across chunks is gathered into one buffer.
 * Decoders throw `H2WireConnectionError` / `H2WireStreamError` with the code RFC 9113 names.
 */
import { H2_FRAME_SIZE_ERROR, H2_PROTOCOL_ERROR, H2WireConnectionError } from './h2wire-errors';

export const FRAME_DATA = 0x0;
export const FRAME_HEADERS = 0x1;
export const FRAME_PRIORITY = 0x2;
export const FRAME_RST_STREAM = 0x3;
export const FRAME_SETTINGS = 0x4;
export const FRAME_PUSH_PROMISE = 0x5;
export const FRAME_PING = 0x6;
export const FRAME_GOAWAY = 0x7;
export const FRAME_WINDOW_UPDATE = 0x8;
export const FRAME_CONTINUATION = 0x9;

export const FLAG_END_STREAM = 0x1;
export const FLAG_ACK = 0x1;
export const FLAG_END_HEADERS = 0x4;
export const FLAG_PADDED = 0x8;
export const FLAG_PRIORITY = 0x20;

export const SETTINGS_HEADER_TABLE_SIZE = 0x1;
export const SETTINGS_ENABLE_PUSH = 0x2;
export const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;
export const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
export const SETTINGS_MAX_FRAME_SIZE = 0x5;
export const SETTINGS_MAX_HEADER_LIST_SIZE = 0x6;

export const FRAME_HEADER_LENGTH = 9;
export const DEFAULT_MAX_FRAME_SIZE = 16384;
export const MAX_MAX_FRAME_SIZE = 16777215;
export const MAX_WINDOW = 0x7fffffff;
export const DEFAULT_WINDOW = 65535;

/** The client connection preface (RFC 9113 §3.4). */
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Writes a frame header at `off` of `buf`. */
export function writeFrameHeader(buf: Buffer, off: number, length: number, type: number, flags: number, streamId: number): void {
  buf[off] = length >>> 16;
  buf[off + 1] = (length >>> 8) & 0xff;
  buf[off + 2] = length & 0xff;
  buf[off + 3] = type;
  buf[off + 4] = flags;
  buf.writeUInt32BE(streamId & MAX_WINDOW, off + 5);
}

/** A frame with `payload` copied in after its header. */
export function encodeFrame(type: number, flags: number, streamId: number, payload?: Uint8Array): Buffer {
  const len = payload?.length ?? 0;
  const buf = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + len);
  writeFrameHeader(buf, 0, len, type, flags, streamId);
  if (payload) buf.set(payload, FRAME_HEADER_LENGTH);
  return buf;
}

/** The header of a DATA frame whose payload is written after it, uncopied. */
export function encodeDataHeader(length: number, endStream: boolean, streamId: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_LENGTH);
  writeFrameHeader(buf, 0, length, FRAME_DATA, endStream ? FLAG_END_STREAM : 0, streamId);
  return buf;
}

/**
 * A header block as one HEADERS frame followed by as many CONTINUATION frames as `maxFrameSize`
 * needs (RFC 9113 §4.3: nothing may come between them, so they are one buffer).
 */
export function encodeHeaderBlock(streamId: number, block: Uint8Array, endStream: boolean, maxFrameSize: number): Buffer {
  const frames = Math.max(1, Math.ceil(block.length / maxFrameSize));
  const out = Buffer.allocUnsafe(block.length + frames * FRAME_HEADER_LENGTH);
  let pos = 0;
  for (let i = 0, off = 0; i < frames; i++) {
    const len = Math.min(maxFrameSize, block.length - off);
    const last = i === frames - 1;
    const type = i === 0 ? FRAME_HEADERS : FRAME_CONTINUATION;
    const flags = (last ? FLAG_END_HEADERS : 0) | (i === 0 && endStream ? FLAG_END_STREAM : 0);
    writeFrameHeader(out, pos, len, type, flags, streamId);
    out.set(block.subarray(off, off + len), pos + FRAME_HEADER_LENGTH);
    pos += FRAME_HEADER_LENGTH + len;
    off += len;
  }
  return out;
}

/** SETTINGS with `entries` as [id, value] pairs; `ack` gives the empty ACK. */
export function encodeSettings(entries: ReadonlyArray<readonly [number, number]>, ack = false): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + entries.length * 6);
  writeFrameHeader(buf, 0, entries.length * 6, FRAME_SETTINGS, ack ? FLAG_ACK : 0, 0);
  entries.forEach(([id, value], i) => {
    buf.writeUInt16BE(id, FRAME_HEADER_LENGTH + i * 6);
    buf.writeUInt32BE(value >>> 0, FRAME_HEADER_LENGTH + i * 6 + 2);
  });
  return buf;
}

export const SETTINGS_ACK = encodeSettings([], true);

export function encodePing(opaque: Uint8Array, ack: boolean): Buffer {
  return encodeFrame(FRAME_PING, ack ? FLAG_ACK : 0, 0, opaque);
}

export function encodeGoaway(lastStreamId: number, code: number, debug = ''): Buffer {
  const dbg = Buffer.from(debug, 'utf8');
  const payload = Buffer.allocUnsafe(8 + dbg.length);
  payload.writeUInt32BE(lastStreamId & MAX_WINDOW, 0);
  payload.writeUInt32BE(code >>> 0, 4);
  dbg.copy(payload, 8);
  return encodeFrame(FRAME_GOAWAY, 0, 0, payload);
}

export function encodeRstStream(streamId: number, code: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + 4);
  writeFrameHeader(buf, 0, 4, FRAME_RST_STREAM, 0, streamId);
  buf.writeUInt32BE(code >>> 0, FRAME_HEADER_LENGTH);
  return buf;
}

export function encodeWindowUpdate(streamId: number, increment: number): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_LENGTH + 4);
  writeFrameHeader(buf, 0, 4, FRAME_WINDOW_UPDATE, 0, streamId);
  buf.writeUInt32BE(increment & MAX_WINDOW, FRAME_HEADER_LENGTH);
  return buf;
}

const connError = (reason: string, code: number, message: string) => new H2WireConnectionError(reason, code, message);

/**
 * The payload of a padded frame (DATA, HEADERS, PUSH_PROMISE) without its padding, and for
 * HEADERS without its priority fields; `dependency` is the stream it depends on, or -1 (a stream
 * depending on itself is the caller's stream error, once its header block is decoded).
 */
export function unpad(type: number, flags: number, streamId: number, payload: Buffer): { body: Buffer; dependency: number } {
  let start = 0;
  let end = payload.length;
  if (flags & FLAG_PADDED) {
    if (payload.length < 1) throw connError('bad-padding', H2_FRAME_SIZE_ERROR, 'padded frame without a pad length');
    end -= payload[0]!;
    start = 1;
  }
  let dependency = -1;
  if (type === FRAME_HEADERS && flags & FLAG_PRIORITY) {
    if (end - start < 5) throw connError('bad-priority', H2_FRAME_SIZE_ERROR, 'HEADERS too short for its priority fields');
    dependency = payload.readUInt32BE(start) & MAX_WINDOW;
    start += 5;
  }
  // RFC 9113 §6.1, §6.2: padding as long as the payload or longer is a PROTOCOL_ERROR.
  if (end < start) throw connError('bad-padding', H2_PROTOCOL_ERROR, 'padding longer than the frame');
  void streamId;
  return { body: payload.subarray(start, end), dependency };
}

/** A SETTINGS payload as [id, value] pairs (RFC 9113 §6.5: a length not a multiple of 6 is FRAME_SIZE_ERROR). */
export function decodeSettings(payload: Buffer): Array<[number, number]> {
  if (payload.length % 6 !== 0) throw connError('bad-settings', H2_FRAME_SIZE_ERROR, `SETTINGS length ${payload.length} is not a multiple of 6`);
  const out: Array<[number, number]> = [];
  for (let i = 0; i < payload.length; i += 6) out.push([payload.readUInt16BE(i), payload.readUInt32BE(i + 2)]);
  return out;
}

/** Receives whole frames; `payload` may be a view of the socket's chunk (copy it to keep it past the call). */
export type FrameSink = (type: number, flags: number, streamId: number, payload: Buffer) => void;

/**
 * Splits socket chunks into frames. `expectPreface` (server role) first checks the client preface;
 * a frame longer than `maxFrameSize` (the SETTINGS_MAX_FRAME_SIZE we advertised) is a
 * FRAME_SIZE_ERROR before its payload is read. Throws from `push` (the sink's errors too).
 */
export class H2FrameParser {
  maxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  private pending: Buffer | undefined;
  private prefaceLeft: number;

  constructor(
    private readonly sink: FrameSink,
    expectPreface: boolean,
  ) {
    this.prefaceLeft = expectPreface ? CLIENT_PREFACE.length : 0;
  }

  push(chunk: Buffer): void {
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    let pos = 0;
    if (this.prefaceLeft > 0) {
      const from = CLIENT_PREFACE.length - this.prefaceLeft;
      const n = Math.min(this.prefaceLeft, buf.length);
      if (CLIENT_PREFACE.compare(buf, 0, n, from, from + n) !== 0) throw connError('bad-preface', H2_PROTOCOL_ERROR, 'the client preface is missing or wrong');
      this.prefaceLeft -= n;
      pos = n;
    }
    const end = buf.length;
    while (end - pos >= FRAME_HEADER_LENGTH) {
      const length = (buf[pos]! << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!;
      if (length > this.maxFrameSize) throw connError('frame-size', H2_FRAME_SIZE_ERROR, `frame of ${length} octets over SETTINGS_MAX_FRAME_SIZE ${this.maxFrameSize}`);
      if (end - pos < FRAME_HEADER_LENGTH + length) break;
      const type = buf[pos + 3]!;
      const flags = buf[pos + 4]!;
      const streamId = buf.readUInt32BE(pos + 5) & MAX_WINDOW;
      const start = pos + FRAME_HEADER_LENGTH;
      pos = start + length;
      this.sink(type, flags, streamId, buf.subarray(start, pos));
    }
    if (pos < end) this.pending = buf.subarray(pos); // socket chunks are never reused by Node
  }
}
