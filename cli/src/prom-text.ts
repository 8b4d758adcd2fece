/**
 * Reading the Prometheus text exposition format (0.0.4) that Weft's sidecars serve on 15020, and
 * the two computations `weft stat` needs from it: counter deltas between two scrapes and quantiles
 * from histogram bucket deltas (as Prometheus's `histogram_quantile` does: linear within a bucket).
 */

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses exposition text; comment lines and blank lines are skipped, a malformed line throws. */
export function parsePromText(text: string): Sample[] {
  const out: Sample[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+-?\d+)?$/.exec(line);
    if (!m) throw new Error(`line ${i + 1}: not a Prometheus sample: ${line.slice(0, 80)}`);
    out.push({ name: m[1]!, labels: m[3] ? parseLabels(m[3], i + 1) : {}, value: parseValue(m[4]!, i + 1) });
  });
  return out;
}

function parseLabels(s: string, line: number): Record<string, string> {
  const labels: Record<string, string> = {};
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) throw new Error(`line ${line}: malformed labels: {${s.slice(0, 80)}}`);
    labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    pos = re.lastIndex;
  }
  return labels;
}

function parseValue(v: string, line: number): number {
  if (v === '+Inf') return Infinity;
  if (v === '-Inf') return -Infinity;
  if (v === 'NaN') return NaN;
  const n = Number(v);
  if (Number.isNaN(n)) throw new Error(`line ${line}: not a number: ${v}`);
  return n;
}

/** A series key: the name and the labels (sorted), minus `drop`. */
export function seriesKey(name: string, labels: Readonly<Record<string, string>>, drop: readonly string[] = []): string {
  return `${name}{${Object.keys(labels).filter((k) => !drop.includes(k)).sort().map((k) => `${k}="${labels[k]}"`).join(',')}}`;
}

/**
 * `after - before` per series (a counter reset, a smaller value, counts as the new value, as
 * Prometheus's `increase` does). Series absent before count from 0.
 */
export function deltas(before: readonly Sample[], after: readonly Sample[]): Sample[] {
  const old = new Map(before.map((s) => [seriesKey(s.name, s.labels), s.value]));
  return after.map((s) => {
    const prev = old.get(seriesKey(s.name, s.labels)) ?? 0;
    return { ...s, value: s.value >= prev ? s.value - prev : s.value };
  });
}

/**
 * The `q` quantile (0–1) of one histogram's bucket counts (`le` → cumulative count), linear within
 * the bucket; NaN when empty. Values in the +Inf bucket are reported as the highest finite bound.
 */
export function histogramQuantile(q: number, buckets: ReadonlyMap<number, number>): number {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const total = buckets.get(Infinity) ?? (bounds.length ? buckets.get(bounds[bounds.length - 1]!)! : 0);
  if (!total) return NaN;
  const rank = q * total;
  let prevBound = 0;
  let prevCount = 0;
  for (const b of bounds) {
    const c = buckets.get(b)!;
    if (c >= rank) {
      if (b === Infinity) return prevBound;
      return prevBound + ((b - prevBound) * (rank - prevCount)) / Math.max(c - prevCount, 1e-12);
    }
    prevBound = b;
    prevCount = c;
  }
  return prevBound;
}
