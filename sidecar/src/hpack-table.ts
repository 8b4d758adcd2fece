/**
 * HPACK's header tables (RFC 7541 §2.3): the static table (Appendix A) with the encoder's lookups
 * into it, and the dynamic table both the encoder and the decoder keep — a FIFO ring of entries
 * with eviction by size (§4). Entry sizes count octets: names and values are byte strings (one
 * char per octet), so a string's length is its size.
 */

/** Appendix A, in index order (index 1 is the first row). */
const STATIC: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

export const STATIC_LENGTH = STATIC.length;
/** `STATIC_NAMES[i]` is the name of static index `i` (index 0 is unused). */
export const STATIC_NAMES: readonly string[] = ['', ...STATIC.map(([name]) => name)];
export const STATIC_VALUES: readonly string[] = ['', ...STATIC.map(([, value]) => value)];

/** The lowest static index with this name. */
export const STATIC_NAME_INDEX: ReadonlyMap<string, number> = new Map(
  STATIC.map(([name], i) => [name, i + 1] as const).reverse(),
);

/** The static index of each (name, value) pair whose value is not empty. */
export const STATIC_PAIR_INDEX: ReadonlyMap<string, ReadonlyMap<string, number>> = (() => {
  const byName = new Map<string, Map<string, number>>();
  STATIC.forEach(([name, value], i) => {
    if (value === '') return;
    let values = byName.get(name);
    if (!values) byName.set(name, (values = new Map()));
    values.set(value, i + 1);
  });
  return byName;
})();

/** Every entry costs its name and value octets plus 32 (§4.1). */
export const ENTRY_OVERHEAD = 32;

/**
 * The dynamic table (§2.3.2, §4): newest entry at dynamic index 1. Entries also carry a sequence
 * number (`inserted` at the time they were added) so the encoder can keep lookups by name and value
 * that survive later insertions; `onEvict` tells it which entries left.
 */
export class HpackDynamicTable {
  /** Octets in use (§4.1). */
  size = 0;
  /** The number of entries ever added; the newest entry's sequence number is `inserted - 1`. */
  inserted = 0;
  private names: string[];
  private values: string[];
  private mask: number;
  /** Ring position of the oldest entry. */
  private head = 0;
  private count = 0;

  constructor(
    /** The current maximum size (§4.2), changed by `setMaxSize`. */
    public maxSize: number,
    private readonly onEvict?: (name: string, value: string, seq: number) => void,
  ) {
    this.names = new Array<string>(16).fill('');
    this.values = new Array<string>(16).fill('');
    this.mask = 15;
  }

  get length(): number {
    return this.count;
  }

  /** The name at dynamic index `i` (1 = newest); the caller checks `1 <= i <= length`. */
  name(i: number): string {
    return this.names[(this.head + this.count - i) & this.mask]!;
  }

  value(i: number): string {
    return this.values[(this.head + this.count - i) & this.mask]!;
  }

  /** The dynamic index of the entry with sequence number `seq`, or 0 once it has been evicted. */
  indexOf(seq: number): number {
    const i = this.inserted - seq;
    return i <= this.count ? i : 0;
  }

  /**
   * Adds an entry, evicting the oldest until it fits (§4.4). An entry larger than the maximum size
   * empties the table and is not added; it returns false then.
   */
  add(name: string, value: string): boolean {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.maxSize) {
      this.evictAll();
      return false;
    }
    this.evictTo(this.maxSize - size);
    if (this.count > this.mask) this.grow();
    const at = (this.head + this.count) & this.mask;
    this.names[at] = name;
    this.values[at] = value;
    this.count++;
    this.inserted++;
    this.size += size;
    return true;
  }

  /** Evicts every entry, as adding one larger than the table does (§4.4). */
  evictAll(): void {
    this.evictTo(0);
  }

  /** A dynamic table size update (§4.3): evicts until the table fits `maxSize`. */
  setMaxSize(maxSize: number): void {
    this.maxSize = maxSize;
    this.evictTo(maxSize);
  }

  private evictTo(limit: number): void {
    while (this.size > limit) {
      const at = this.head;
      const name = this.names[at]!;
      const value = this.values[at]!;
      this.size -= name.length + value.length + ENTRY_OVERHEAD;
      this.names[at] = '';
      this.values[at] = '';
      this.head = (at + 1) & this.mask;
      this.count--;
      this.onEvict?.(name, value, this.inserted - this.count - 1);
    }
  }

  private grow(): void {
    const capacity = (this.mask + 1) * 2;
    const names = new Array<string>(capacity).fill('');
    const values = new Array<string>(capacity).fill('');
    for (let i = 0; i < this.count; i++) {
      names[i] = this.names[(this.head + i) & this.mask]!;
      values[i] = this.values[(this.head + i) & this.mask]!;
    }
    this.names = names;
    this.values = values;
    this.mask = capacity - 1;
    this.head = 0;
  }
}
