/**
 * HPACK decoding (RFC 7541 §3, §6) of one complete header block at a time: the HEADERS payload
 * and its CONTINUATIONs, concatenated, with padding and priority already removed by the frame
 * layer.
 *
 * Output is a flat array `[name0, value0, name1, value1, ...]` in block order. Names and values
 * are byte strings (one char per octet, latin1), as Node's http2 gives them. The decoder does not
 * judge HTTP semantics: upper-case names, pseudo-headers after regular ones, connection-specific
 * fields are returned as they came — RFC 9113 §8.2 makes them a malformed *stream*, which the
 * stream layer refuses, while the connection (and the dynamic table) goes on.
 *
 * Errors (`HpackError`): `COMPRESSION_ERROR` for anything that is not valid HPACK — truncated
 * integers or strings, an integer above 2^31-1, index 0 or past the tables, a Huffman string with
 * EOS or bad padding, a table size update above `maxTableSize` or after the first field;
 * `HEADER_LIST_TOO_LARGE` when the fields pass `maxHeaderListSize` (octets of name + value + 32
 * per field, RFC 9113 §6.5.2) or `maxHeaderCount`. For the latter the block is still decoded to its
 * end, so the dynamic table stays in step with the peer and the next block decodes. A string longer
 * than both `maxHeaderListSize` and `maxTableSize` is checked (Huffman validity) but never built,
 * so a peer cannot make the decoder allocate more than the limits, whatever the block's length.
 *
 * `decode` is synchronous and reuses one module-wide scratch buffer for Huffman output.
 */
import { HpackError } from './hpack-errors';
import { huffmanDecode, huffmanValid } from './hpack-huffman';
import { ENTRY_OVERHEAD, HpackDynamicTable, STATIC_LENGTH, STATIC_NAMES, STATIC_VALUES } from './hpack-table';

export interface HpackDecoderOptions {
  /** The SETTINGS_HEADER_TABLE_SIZE we advertise: the largest table size update accepted. Default 4096. */
  readonly maxTableSize?: number;
  /** Octets per header list, counting name + value + 32 per field (RFC 9113 §6.5.2). Default 65536. */
  readonly maxHeaderListSize?: number;
  /** Fields per header list. Default: no limit beyond `maxHeaderListSize` (which allows at most 2048). */
  readonly maxHeaderCount?: number;
}

const MAX_INTEGER = 0x7fffffff;

/** Buffer's native latin1 slicing, which @types/node does not declare. */
type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

let scratch = Buffer.allocUnsafe(4096) as Latin1Buffer;

export class HpackDecoder {
  private readonly table: HpackDynamicTable;
  private readonly maxTableSize: number;
  private readonly maxHeaderListSize: number;
  private readonly maxHeaderCount: number;
  /** The block being decoded and the read position in it (fields, to spare tuples per integer). */
  private buf: Latin1Buffer = scratch;
  private pos = 0;
  private end = 0;
  /** A string longer than either limit makes its field too large and can never enter the table. */
  private readonly stringLimit: number;
  /** The current field had such a string: it was checked but not built. */
  private oversize = false;
  private sensitive: Set<string> | undefined;

  constructor(opts: HpackDecoderOptions = {}) {
    this.maxTableSize = limit('maxTableSize', opts.maxTableSize, 4096);
    this.maxHeaderListSize = limit('maxHeaderListSize', opts.maxHeaderListSize, 65536);
    this.maxHeaderCount = limit('maxHeaderCount', opts.maxHeaderCount, MAX_INTEGER);
    this.stringLimit = Math.max(this.maxHeaderListSize, this.maxTableSize);
    // The table starts at the advertised size, as Go's and nghttp2's decoders do and RFC 7541's
    // examples assume (C.5). A larger size than the peer's encoder assumes is always safe (what it
    // evicted it never references); a smaller one holds only if the peer saw our SETTINGS before its
    // first block, so advertise less than 4096 only knowing that.
    this.table = new HpackDynamicTable(this.maxTableSize);
  }

  /**
   * The values of the fields the last decoded block sent never-indexed (§6.2.3), or undefined when
   * none were (the common case; no allocation). A proxy passes this set to the next hop's
   * `HpackEncoder.encode`, which then sends those fields never-indexed too, as §7.1.3 requires of
   * intermediaries. Values rather than positions, so it survives header rewriting.
   */
  get neverIndexed(): ReadonlySet<string> | undefined {
    return this.sensitive;
  }

  /** The dynamic table's current size in octets and its maximum (for tests and metrics). */
  get tableSize(): { readonly size: number; readonly maxSize: number; readonly entries: number } {
    return { size: this.table.size, maxSize: this.table.maxSize, entries: this.table.length };
  }

  /** Decodes one complete header block; see the module comment for errors. */
  decode(block: Uint8Array): string[] {
    this.buf = (Buffer.isBuffer(block) ? block : Buffer.from(block.buffer, block.byteOffset, block.byteLength)) as Latin1Buffer;
    this.pos = 0;
    this.end = block.length;
    this.oversize = false;
    this.sensitive = undefined;
    try {
      return this.fields();
    } finally {
      this.buf = scratch;
    }
  }

  private fields(): string[] {
    const out: string[] = [];
    const table = this.table;
    const buf = this.buf;
    let listSize = 0;
    let count = 0;
    let tooLarge = false;
    while (this.pos < this.end) {
      const first = buf[this.pos]!;
      let name: string;
      let value: string;
      if (first & 0x80) {
        // Indexed field (§6.1).
        const index = this.integer(7);
        if (index === 0) throw compression('indexed field with index 0');
        if (index <= STATIC_LENGTH) {
          name = STATIC_NAMES[index]!;
          value = STATIC_VALUES[index]!;
        } else {
          const i = index - STATIC_LENGTH;
          if (i > table.length) throw compression(`index ${index} is past the dynamic table`);
          name = table.name(i);
          value = table.value(i);
        }
      } else if (first & 0x40) {
        // Literal with incremental indexing (§6.2.1).
        name = this.literalName(6);
        value = this.string();
        // An oversize entry empties the table (§4.4), whatever its text.
        if (this.oversize) table.evictAll();
        else table.add(name, value);
      } else if (first & 0x20) {
        // Dynamic table size update (§6.3): only before the first field (§4.2).
        if (count > 0) throw compression('table size update after a header field');
        const size = this.integer(5);
        if (size > this.maxTableSize) throw compression(`table size update to ${size} above the advertised ${this.maxTableSize}`);
        table.setMaxSize(size);
        continue;
      } else {
        // Literal without indexing (0000) or never indexed (0001) (§6.2.2, §6.2.3).
        name = this.literalName(4);
        value = this.string();
        if (first & 0x10) (this.sensitive ??= new Set()).add(value);
      }
      count++;
      listSize += name.length + value.length + ENTRY_OVERHEAD;
      if (this.oversize) {
        this.oversize = false;
        tooLarge = true;
      }
      if (tooLarge) continue;
      if (listSize > this.maxHeaderListSize || count > this.maxHeaderCount) {
        tooLarge = true;
        continue;
      }
      out.push(name, value);
    }
    if (tooLarge) {
      throw new HpackError('HEADER_LIST_TOO_LARGE', `header list of ${count} fields, ${listSize} octets, above the limit of ${this.maxHeaderCount} fields or ${this.maxHeaderListSize} octets`);
    }
    return out;
  }

  /** A literal's name: indexed (static or dynamic) when the prefix is not 0, else a string. */
  private literalName(prefix: number): string {
    const index = this.integer(prefix);
    if (index === 0) return this.string();
    if (index <= STATIC_LENGTH) return STATIC_NAMES[index]!;
    const i = index - STATIC_LENGTH;
    if (i > this.table.length) throw compression(`name index ${index} is past the dynamic table`);
    return this.table.name(i);
  }

  /** An integer with an N-bit prefix (§5.1), at most 2^31-1. */
  private integer(prefix: number): number {
    const buf = this.buf;
    const max = (1 << prefix) - 1;
    let value = buf[this.pos++]! & max;
    if (value < max) return value;
    for (let shift = 0; ; shift += 7) {
      if (this.pos >= this.end) throw compression('truncated integer');
      // Five continuation octets carry 35 bits; more can only be zero padding or overflow.
      if (shift > 28) throw compression('integer above 2^31-1');
      const byte = buf[this.pos++]!;
      // Multiplication, not shifts: the sum may pass 2^31 before it is refused.
      value += (byte & 0x7f) * 2 ** shift;
      if (value > MAX_INTEGER) throw compression('integer above 2^31-1');
      if ((byte & 0x80) === 0) return value;
    }
  }

  /** A string literal (§5.2), raw or Huffman-encoded. */
  private string(): string {
    if (this.pos >= this.end) throw compression('truncated string');
    const huffman = this.buf[this.pos]! & 0x80;
    const length = this.integer(7);
    const start = this.pos;
    const stop = start + length;
    if (stop > this.end) throw compression(`string of ${length} octets past the end of the block`);
    this.pos = stop;
    if (length === 0) return '';
    // Past the limits the string is only checked, not built: a peer cannot make us allocate it.
    // Huffman codes are at most 30 bits, so n octets decode to at least 8n/30.
    if ((huffman ? Math.floor((length * 8) / 30) : length) > this.stringLimit) {
      if (huffman && !huffmanValid(this.buf, start, stop)) throw compression('Huffman string with EOS or bad padding');
      this.oversize = true;
      return '';
    }
    if (!huffman) return this.buf.latin1Slice(start, stop);
    // The shortest code is 5 bits: n octets decode to at most 8n/5 symbols.
    const most = Math.ceil((length * 8) / 5);
    if (scratch.length < most) scratch = Buffer.allocUnsafe(Math.max(most, scratch.length * 2)) as Latin1Buffer;
    const n = huffmanDecode(this.buf, start, stop, scratch);
    if (n < 0) throw compression('Huffman string with EOS or bad padding');
    return scratch.latin1Slice(0, n);
  }
}

function compression(message: string): HpackError {
  return new HpackError('COMPRESSION_ERROR', message);
}

function limit(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0 || value > MAX_INTEGER) throw new RangeError(`HpackDecoder ${name} must be an integer from 0 to 2^31-1, got ${value}`);
  return value;
}
