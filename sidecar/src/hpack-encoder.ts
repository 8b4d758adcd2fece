/**
 * HPACK encoding (RFC 7541) of one header block at a time, from a flat `[name0, value0, ...]`
 * array (names lower-case, pseudo-headers first — the caller's job; this module only encodes).
 * Names and values are byte strings: each char one octet (latin1), the way the decoder returns
 * them; a char above U+00FF is a caller bug: a TypeError, and that block is lost (see `encode`).
 *
 * What is indexed (§7.1 and practice shared with nghttp2):
 * - a field already in the static or dynamic table is sent as its index (1-2 octets);
 * - `authorization` and `proxy-authorization`, and `cookie` / `set-cookie` values shorter than 20
 *   octets (short enough to guess), are sent never-indexed, so no intermediary indexes them either;
 *   so is any field whose value the caller passes in `neverIndexed` — a relay passes the set its
 *   decoder reported, keeping a never-indexed field never-indexed on the next hop (§7.1.3);
 * - fields whose values are unique per message (`content-length`, `date`, `etag`, trace and request
 *   ids, `grpc-timeout`, `set-cookie`, ...) and fields larger than 3/4 of the table are sent without
 *   indexing, so they do not evict what repeats;
 * - `:path` is indexed the second time it is sent: a gRPC method's path repeats on every call, a
 *   REST path with an id in it may never, and would only evict what does (the encoder remembers
 *   the last `SEEN_LIMIT` paths sent once, each at most `SEEN_LENGTH` octets: a longer path is
 *   never indexed);
 * - everything else (`:authority`, `content-type`, `user-agent`, `grpc-status`, ...) is added to
 *   the dynamic table, and the next block that repeats it costs one octet.
 * Strings are Huffman-encoded when that is shorter.
 *
 * `encode` is synchronous; it writes into one module-wide scratch buffer and returns a copy of
 * exactly the block's length (plus any headroom asked for).
 */
import { huffmanEncode, huffmanLength } from './hpack-huffman';
import { ENTRY_OVERHEAD, HpackDynamicTable, STATIC_LENGTH, STATIC_NAME_INDEX, STATIC_PAIR_INDEX } from './hpack-table';

export interface HpackEncoderOptions {
  /** The most table memory we are willing to use, whatever the peer allows. Default 4096. */
  readonly maxTableSize?: number;
}

/** The protocol's initial table size (RFC 9113 §6.5.2), in force until SETTINGS say otherwise. */
const INITIAL_TABLE_SIZE = 4096;
const MAX_SETTING = 0xffffffff;

/** What to do with a field (§6.2): index it, send it without indexing, or never indexed. */
const INDEX = 0;
const NOT_INDEXED = 1;
const NEVER_INDEXED = 2;
/** Indexed the second time the value is sent (`:path`: a gRPC method repeats, a REST id does not). */
const INDEX_REPEATS = 3;
/** How many once-seen values are remembered before the memory starts over, and the longest. */
const SEEN_LIMIT = 64;
const SEEN_LENGTH = 256;

/** Credentials: never indexed, whatever their length. */
const ALWAYS_SENSITIVE = ['authorization', 'proxy-authorization'];
/** Never indexed while shorter than `SHORT_SECRET` octets (RFC 7541 §7.1.3). */
const COOKIES = ['cookie', 'set-cookie'];
const SHORT_SECRET = 20;
/** Values that rarely repeat: indexing them would only evict what does. */
const UNIQUE_VALUES = [
  'content-length', 'content-range', 'date', 'etag', 'expires', 'last-modified', 'age', 'location',
  'if-modified-since', 'if-none-match', 'if-unmodified-since', 'set-cookie', 'link',
  'x-request-id', 'traceparent', 'tracestate', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid',
  'b3', 'x-cloud-trace-context', 'grpc-timeout', 'grpc-trace-bin',
];

/** What the encoder knows of a name before any block: its static index and values, and its policy. */
interface KnownName {
  readonly staticIndex: number;
  readonly staticValues: ReadonlyMap<string, number> | undefined;
  readonly policy: number;
  /** Never indexed when the value is shorter than `SHORT_SECRET`. */
  readonly shortSecret: boolean;
}

/** One lookup per field for the names that matter (static ones and those with a policy). */
const KNOWN: ReadonlyMap<string, KnownName> = new Map(
  [...new Set([...STATIC_NAME_INDEX.keys(), ...ALWAYS_SENSITIVE, ...COOKIES, ...UNIQUE_VALUES])].map((name) => [name, {
    staticIndex: STATIC_NAME_INDEX.get(name) ?? 0,
    staticValues: STATIC_PAIR_INDEX.get(name),
    policy: ALWAYS_SENSITIVE.includes(name) ? NEVER_INDEXED : UNIQUE_VALUES.includes(name) ? NOT_INDEXED : name === ':path' ? INDEX_REPEATS : INDEX,
    shortSecret: COOKIES.includes(name),
  }]),
);

/** Buffer's native latin1 writing, which @types/node does not declare. */
type Latin1Buffer = Buffer & { latin1Write(s: string, offset: number): number };

let scratch = Buffer.allocUnsafe(4096) as Latin1Buffer;

/** The dynamic table's entries of one name: the newest one's sequence number, and each value's. */
interface DynamicName {
  newest: number;
  readonly values: Map<string, number>;
}

export class HpackEncoder {
  private readonly table: HpackDynamicTable;
  private readonly limit: number;
  private readonly byName = new Map<string, DynamicName>();
  /** Values of `INDEX_REPEATS` fields sent once, not yet indexed. */
  private readonly seen = new Set<string>();
  /** A table size change not yet signalled: the smallest size since the last block, and the last. */
  private pendingMin = -1;
  private pendingSize = -1;

  constructor(opts: HpackEncoderOptions = {}) {
    this.limit = setting('maxTableSize', opts.maxTableSize ?? 4096);
    this.table = new HpackDynamicTable(INITIAL_TABLE_SIZE, (name, value, seq) => this.evicted(name, value, seq));
    if (this.limit < INITIAL_TABLE_SIZE) this.setMaxTableSize(INITIAL_TABLE_SIZE);
  }

  /**
   * The peer's SETTINGS_HEADER_TABLE_SIZE. The table then uses the smaller of it and our own
   * `maxTableSize`, and the next block starts with the size update(s) that tell the peer (§4.2:
   * the smallest size reached since the last block first, then the final one).
   */
  setMaxTableSize(n: number): void {
    const size = Math.min(setting('SETTINGS_HEADER_TABLE_SIZE', n), this.limit);
    if (this.pendingSize < 0) {
      if (size === this.table.maxSize) return;
      this.pendingMin = size;
    } else {
      this.pendingMin = Math.min(this.pendingMin, size);
    }
    this.pendingSize = size;
  }

  /**
   * Encodes one header block (see the module comment for what gets indexed). The result starts with
   * `headroom` octets left for the caller (uninitialised: a frame header written in place saves a
   * copy), then the block. A throw (bad input) sends nothing and loses no state the peer knows of. Fields whose value is in `neverIndexed` (a decoder's `neverIndexed`, when
   * relaying) are sent never-indexed, besides the credentials this encoder always protects.
   */
  encode(headers: readonly string[], headroom = 0, neverIndexed?: ReadonlySet<string>): Buffer {
    if (headers.length % 2 !== 0) throw new TypeError('HpackEncoder.encode takes [name, value, ...] pairs');
    if (!Number.isInteger(headroom) || headroom < 0) throw new RangeError(`headroom must be a non-negative integer, got ${headroom}`);
    const inserted = this.table.inserted;
    const pendingSize = this.pendingSize;
    let pos = headroom;
    ensure(headroom);
    try {
      if (pendingSize >= 0) {
        ensure(pos + 12);
        if (this.pendingMin < pendingSize) {
          pos = integer(scratch, pos, 0x20, 5, this.pendingMin);
          this.table.setMaxSize(this.pendingMin);
        }
        pos = integer(scratch, pos, 0x20, 5, pendingSize);
        this.table.setMaxSize(pendingSize);
        this.pendingMin = this.pendingSize = -1;
      }
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i]!;
        const value = headers[i + 1]!;
        // Three integers of at most 6 octets, and the two strings, never longer than raw.
        ensure(pos + name.length + value.length + 18);
        pos = this.field(name, value, pos, neverIndexed !== undefined && neverIndexed.has(value));
      }
    } catch (err) {
      // The block is lost, and with it any insertion or size update it made: the peer never sees
      // them. Both tables are brought back in step by emptying them — the next block starts with
      // a size update to 0, then back (§4.2) — which costs one cold block after a caller's bug.
      if (this.table.inserted !== inserted || pendingSize >= 0) {
        const size = pendingSize >= 0 ? pendingSize : this.table.maxSize;
        this.table.setMaxSize(0);
        this.pendingMin = 0;
        this.pendingSize = size;
      }
      throw err;
    }
    const out = Buffer.allocUnsafe(pos);
    scratch.copy(out, headroom, headroom, pos);
    return out;
  }

  private field(name: string, value: string, pos: number, sensitive: boolean): number {
    const known = KNOWN.get(name);
    let policy = INDEX;
    if (sensitive) policy = NEVER_INDEXED;
    else if (known !== undefined) policy = known.shortSecret && value.length < SHORT_SECRET ? NEVER_INDEXED : known.policy;
    const dynamic = this.byName.get(name);
    if (policy !== NEVER_INDEXED) {
      const index = known?.staticValues?.get(value) ?? this.dynamicIndex(dynamic?.values.get(value));
      if (index > 0) return integer(scratch, pos, 0x80, 7, index);
    }
    const nameIndex = known !== undefined && known.staticIndex > 0 ? known.staticIndex : this.dynamicIndex(dynamic?.newest);
    // Strings are checked before the table changes, so a refused one leaves nothing to undo here.
    const valueLength = huffmanLength(value);
    const nameLength = nameIndex === 0 ? huffmanLength(name) : 0;
    if (valueLength < 0 || nameLength < 0) throw new TypeError(`header ${valueLength < 0 ? 'value' : 'name'} has a char above U+00FF (not a byte string)`);
    if (policy === NEVER_INDEXED) {
      pos = integer(scratch, pos, 0x10, 4, nameIndex);
    } else if (policy === NOT_INDEXED || (name.length + value.length + ENTRY_OVERHEAD) * 4 > this.table.maxSize * 3 || (policy === INDEX_REPEATS && this.firstSighting(value))) {
      pos = integer(scratch, pos, 0x00, 4, nameIndex);
    } else {
      pos = integer(scratch, pos, 0x40, 6, nameIndex);
      const seq = this.table.inserted;
      if (this.table.add(name, value)) {
        const entry = this.byName.get(name);
        if (entry) {
          entry.newest = seq;
          entry.values.set(value, seq);
        } else {
          this.byName.set(name, { newest: seq, values: new Map([[value, seq]]) });
        }
      }
    }
    if (nameIndex === 0) pos = string(name, nameLength, pos);
    return string(value, valueLength, pos);
  }

  /**
   * Whether `value` is new to the recent past (then remembered, so its next sending indexes it).
   * The memory is bounded: at most `SEEN_LIMIT` values of at most `SEEN_LENGTH` octets.
   */
  private firstSighting(value: string): boolean {
    if (value.length > SEEN_LENGTH) return true;
    if (this.seen.has(value)) return false;
    if (this.seen.size >= SEEN_LIMIT) this.seen.clear();
    this.seen.add(value);
    return true;
  }

  /** The absolute index of a dynamic entry by sequence number, or 0 when absent or evicted. */
  private dynamicIndex(seq: number | undefined): number {
    if (seq === undefined) return 0;
    const i = this.table.indexOf(seq);
    return i > 0 ? STATIC_LENGTH + i : 0;
  }

  private evicted(name: string, value: string, seq: number): void {
    const entry = this.byName.get(name);
    if (!entry) return;
    // Eviction is oldest first: once a name's newest entry goes, all of that name's are gone.
    if (entry.newest === seq) this.byName.delete(name);
    else if (entry.values.get(value) === seq) entry.values.delete(value);
  }
}

function ensure(length: number): void {
  if (scratch.length >= length) return;
  const grown = Buffer.allocUnsafe(Math.max(length, scratch.length * 2)) as Latin1Buffer;
  scratch.copy(grown);
  scratch = grown;
}

/** Writes `value` with an N-bit prefix after the `first` bits (§5.1); returns the end position. */
function integer(dst: Uint8Array, pos: number, first: number, prefix: number, value: number): number {
  const max = (1 << prefix) - 1;
  if (value < max) {
    dst[pos++] = first | value;
    return pos;
  }
  dst[pos++] = first | max;
  value -= max;
  while (value >= 0x80) {
    dst[pos++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  dst[pos++] = value;
  return pos;
}

/** Writes a string literal (§5.2), Huffman-encoded when shorter (`huffman` octets); returns the end position. */
function string(s: string, huffman: number, pos: number): number {
  if (huffman < s.length) {
    pos = integer(scratch, pos, 0x80, 7, huffman);
    return huffmanEncode(s, scratch, pos);
  }
  pos = integer(scratch, pos, 0x00, 7, s.length);
  if (s.length > 32) return pos + scratch.latin1Write(s, pos);
  for (let i = 0; i < s.length; i++) scratch[pos++] = s.charCodeAt(i);
  return pos;
}

function setting(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_SETTING) throw new RangeError(`HpackEncoder ${name} must be an integer from 0 to 2^32-1, got ${value}`);
  return value;
}
