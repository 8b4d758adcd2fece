/**
 * OTLP protobuf, written directly (docs/tracing.md): the few messages of
 * `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest` a proxy span needs —
 * `ResourceSpans`, `ScopeSpans`, `Span`, `KeyValue` with string and int values, `Status` — encoded
 * into one growing buffer per export batch. What never changes (the resource, a listener's and a
 * route's attributes) is encoded once and copied in as bytes (`encodeAttributes`).
 *
 * Field numbers are those of opentelemetry/proto/trace/v1/trace.proto and common.proto; the tests
 * decode the output with the official generated protos.
 */

/** An attribute value this encoder writes: strings, and non-negative integers (ports, statuses, counts). */
export type AttrValue = string | number;

const LEN = 2; // wire type: length-delimited
const I64 = 1; // wire type: fixed 64-bit
const I32 = 5; // wire type: fixed 32-bit

const varintSize = (v: number): number => (v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : v < 2 ** 35 ? 5 : v < 2 ** 42 ? 6 : v < 2 ** 49 ? 7 : 8);

/** Strings up to this long are checked and copied in JS when they are ASCII. */
const SHORT = 64;

/** The UTF-8 length of `s` (a short ASCII string is its length, found without a native call). */
function utf8Length(s: string): number {
  if (s.length > SHORT) return Buffer.byteLength(s);
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s);
  return s.length;
}

/** Hex digit values by character code (lowercase and uppercase). */
const HEX = new Uint8Array(128);
for (let i = 0; i < 16; i++) {
  HEX['0123456789abcdef'.charCodeAt(i)] = i;
  HEX['0123456789ABCDEF'.charCodeAt(i)] = i;
}

/** A protobuf writer over a buffer that grows as needed. */
export class ProtoWriter {
  buf: Buffer;
  pos = 0;

  constructor(size = 16 * 1024) {
    this.buf = Buffer.allocUnsafe(size);
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** A non-negative integer below 2^53. */
  varint(v: number): void {
    this.ensure(8);
    const b = this.buf;
    while (v >= 0x80) {
      b[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    b[this.pos++] = v;
  }

  tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  /** A length-delimited field of `len` bytes whose content the caller writes next. */
  header(field: number, len: number): void {
    this.tag(field, LEN);
    this.varint(len);
  }

  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  string(field: number, s: string): void {
    const n = utf8Length(s);
    this.header(field, n);
    this.utf8(s, n);
  }

  /** `s`, of `n` UTF-8 bytes (`utf8Length`), without a length. */
  private utf8(s: string, n: number): void {
    this.ensure(n);
    if (n === s.length && n <= SHORT) {
      // ASCII and short: byte by byte beats a call into the native encoder.
      const b = this.buf;
      for (let i = 0, at = this.pos; i < n; i++) b[at + i] = s.charCodeAt(i);
      this.pos += n;
    } else this.pos += this.buf.write(s, this.pos, n, 'utf8');
  }

  /** `hex` (lowercase, even length) as bytes. */
  hex(field: number, hex: string): void {
    const n = hex.length >> 1;
    this.header(field, n);
    this.ensure(n);
    const b = this.buf;
    for (let i = 0, at = this.pos; i < n; i++) b[at + i] = (HEX[hex.charCodeAt(2 * i)]! << 4) | HEX[hex.charCodeAt(2 * i + 1)]!;
    this.pos += n;
  }

  /** A time in ms since the epoch (fractional) as `fixed64` nanoseconds (µs precision, no BigInt). */
  timeNanos(field: number, ms: number): void {
    this.tag(field, I64);
    this.ensure(8);
    const us = Math.round(ms * 1000); // < 2^53: exact
    const high = Math.floor(us / 0x100000000);
    const low = (us - high * 0x100000000) * 1000; // < 2^42: exact
    const carry = Math.floor(low / 0x100000000);
    this.buf.writeUInt32LE(low - carry * 0x100000000, this.pos);
    this.buf.writeUInt32LE(high * 1000 + carry, this.pos + 4);
    this.pos += 8;
  }

  /**
   * Starts a length-delimited field whose length is not known yet: 2 bytes are reserved for it
   * (most spans are 128 bytes to 16 KiB); `endLength` fills them in, moving the content if the
   * length needs 1 or 3+ bytes.
   */
  beginLength(field: number): number {
    this.tag(field, LEN);
    this.ensure(2);
    this.pos += 2;
    return this.pos;
  }

  endLength(start: number): void {
    const len = this.pos - start;
    const size = varintSize(len);
    if (size !== 2) {
      this.ensure(size - 2);
      this.buf.copyWithin(start + size - 2, start, this.pos);
      this.pos += size - 2;
    }
    let at = start - 2;
    let v = len;
    while (v >= 0x80) {
      this.buf[at++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[at] = v;
  }

  fixed32(field: number, v: number): void {
    this.tag(field, I32);
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.pos);
    this.pos += 4;
  }

  /** One `KeyValue` (`key` pre-encoded by `keyBytes`) as field `field` of the enclosing message. */
  attr(field: number, key: Buffer, value: AttrValue): void {
    if (typeof value === 'number') {
      const any = 1 + varintSize(value); // AnyValue.int_value (3)
      this.header(field, key.length + 1 + varintSize(any) + any);
      this.raw(key);
      this.header(2, any);
      this.tag(3, 0);
      this.varint(value);
    } else {
      const n = utf8Length(value);
      const any = 1 + varintSize(n) + n; // AnyValue.string_value (1)
      this.header(field, key.length + 1 + varintSize(any) + any);
      this.raw(key);
      this.header(2, any);
      this.header(1, n);
      this.utf8(value, n);
    }
  }

  /** What was written, as a copy the writer no longer shares. */
  bytes(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos));
  }
}

const keys = new Map<string, Buffer>();

/** `KeyValue.key` (field 1) of `key`, encoded once per key name. */
export function keyBytes(key: string): Buffer {
  let b = keys.get(key);
  if (!b) {
    const w = new ProtoWriter(key.length * 3 + 8);
    w.string(1, key);
    keys.set(key, (b = w.bytes()));
  }
  return b;
}

/** Attributes (as `KeyValue`s of field `field`: 9 in a Span, 1 in a Resource) encoded once, to be copied into many messages. */
export function encodeAttributes(attrs: Readonly<Record<string, AttrValue | undefined>>, field: number = SPAN.attributes): Buffer {
  const w = new ProtoWriter(256);
  for (const k in attrs) if (attrs[k] !== undefined) w.attr(field, keyBytes(k), attrs[k]!);
  return w.bytes();
}

/** Field numbers of `opentelemetry.proto.trace.v1.Span`. */
export const SPAN = {
  traceId: 1, spanId: 2, traceState: 3, parentSpanId: 4, name: 5, kind: 6, start: 7, end: 8, attributes: 9, status: 15, flags: 16,
} as const;

/** `SpanFlags`: the parent-is-remote bits OTLP exporters set (bit 8: known, bit 9: remote). */
export const FLAGS_HAS_IS_REMOTE = 0x100;
export const FLAGS_IS_REMOTE = 0x200;

/**
 * The start of one `ExportTraceServiceRequest`: `ResourceSpans` with the pre-encoded resource and
 * scope, up to its `ScopeSpans.spans` — the `spansLength` bytes of encoded spans that follow it
 * on the wire complete the message.
 */
export function exportRequestHead(resource: Buffer, scope: Buffer, spansLength: number): Buffer {
  const scopeSpans = scope.length + spansLength; // ScopeSpans: scope (1), spans (2)…
  const resourceSpans = 1 + varintSize(resource.length) + resource.length + 1 + varintSize(scopeSpans) + scopeSpans;
  const w = new ProtoWriter(16 + resource.length + scope.length);
  w.header(1, resourceSpans); // ExportTraceServiceRequest.resource_spans
  w.header(1, resource.length); // ResourceSpans.resource
  w.raw(resource);
  w.header(2, scopeSpans); // ResourceSpans.scope_spans
  w.raw(scope);
  return w.buf.subarray(0, w.pos);
}

/** `Resource` (its attributes) and `ScopeSpans.scope` (`InstrumentationScope.name`), encoded once per tracer. */
export function resourceAndScope(attrs: Readonly<Record<string, string>>, scopeName: string): { resource: Buffer; scope: Buffer } {
  const resource = encodeAttributes(attrs, 1);
  const name = new ProtoWriter(64);
  name.string(1, scopeName);
  const scope = new ProtoWriter(64);
  scope.header(1, name.pos);
  scope.raw(name.bytes());
  return { resource, scope: scope.bytes() };
}
