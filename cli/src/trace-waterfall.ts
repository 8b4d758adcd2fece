/**
 * `weft trace`'s picture of one trace: its spans as a tree (children under their parent, in start
 * order) with a time bar each, the way a tracing UI's waterfall looks, in plain text. Pure: spans
 * in, lines out.
 */

/** One span as `weft trace` shows it (decoded from OTLP by trace-otlp.ts). */
export interface ShownSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** Empty for a root. */
  readonly parentSpanId: string;
  /** The resource's `service.name`. */
  readonly service: string;
  readonly name: string;
  readonly kind: 'server' | 'client' | 'internal' | 'producer' | 'consumer' | 'unspecified';
  /** Nanoseconds since the epoch. */
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly error: boolean;
  /** HTTP status, or gRPC status, or '' (from the span's attributes). */
  readonly status: string;
  /** A short note: the error type or status message. */
  readonly note: string;
  /** Every attribute, as text. */
  readonly attributes?: Readonly<Record<string, string>>;
}

const BAR_WIDTH = 32;
const LABEL_WIDTH = 56;

function ms(ns: bigint): string {
  const v = Number(ns) / 1e6;
  return v >= 100 ? `${v.toFixed(0)} ms` : v >= 10 ? `${v.toFixed(1)} ms` : `${v.toFixed(2)} ms`;
}

const KIND: Record<ShownSpan['kind'], string> = { server: 'server', client: 'client', internal: 'internal', producer: 'producer', consumer: 'consumer', unspecified: 'span' };

/** Spans ordered as a depth-first walk of the tree (orphans, whose parent never arrived, are roots). */
export function spanTree(spans: readonly ShownSpan[]): { span: ShownSpan; depth: number }[] {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string, ShownSpan[]>();
  const roots: ShownSpan[] = [];
  for (const s of spans) {
    if (s.parentSpanId && ids.has(s.parentSpanId)) {
      const list = children.get(s.parentSpanId) ?? [];
      list.push(s);
      children.set(s.parentSpanId, list);
    } else roots.push(s);
  }
  const byStart = (a: ShownSpan, b: ShownSpan): number => (a.startNs < b.startNs ? -1 : a.startNs > b.startNs ? 1 : 0);
  const out: { span: ShownSpan; depth: number }[] = [];
  const walk = (s: ShownSpan, depth: number): void => {
    out.push({ span: s, depth });
    for (const c of (children.get(s.spanId) ?? []).sort(byStart)) walk(c, depth + 1);
  };
  for (const r of roots.sort(byStart)) walk(r, 0);
  return out;
}

/** The waterfall of one trace: a header line, then one line per span. */
export function renderWaterfall(spans: readonly ShownSpan[]): string[] {
  if (spans.length === 0) return [];
  let start = spans[0]!.startNs;
  let end = spans[0]!.endNs;
  for (const s of spans) {
    if (s.startNs < start) start = s.startNs;
    if (s.endNs > end) end = s.endNs;
  }
  const total = end > start ? end - start : 1n;
  const services = [...new Set(spans.map((s) => s.service))];
  const errors = spans.filter((s) => s.error).length;
  const lines = [
    `trace ${spans[0]!.traceId}  ${spans.length} span${spans.length === 1 ? '' : 's'}  ${ms(end - start)}  ${services.join(' → ')}  ${errors ? `${errors} ERROR${errors === 1 ? '' : 'S'}` : 'OK'}`,
  ];
  for (const { span: s, depth } of spanTree(spans)) {
    const label = `${'  '.repeat(depth)}${s.service} ${KIND[s.kind]}: ${s.name}`;
    const from = Number(((s.startNs - start) * BigInt(BAR_WIDTH)) / total);
    const len = Math.max(1, Number(((s.endNs - s.startNs) * BigInt(BAR_WIDTH)) / total));
    const bar = ' '.repeat(Math.min(from, BAR_WIDTH - 1)) + (s.error ? '!' : '█').repeat(Math.min(len, BAR_WIDTH - Math.min(from, BAR_WIDTH - 1)));
    const status = `${s.error ? 'ERR ' : ''}${s.status}`.trim() || (s.error ? 'ERR' : 'ok');
    const cut = label.length > LABEL_WIDTH ? `${label.slice(0, LABEL_WIDTH - 1)}…` : label.padEnd(LABEL_WIDTH);
    lines.push(`  ${cut} ${status.padEnd(8)} |${bar.padEnd(BAR_WIDTH)}| ${ms(s.endNs - s.startNs).padStart(9)}${s.note ? `  ${s.note}` : ''}`);
  }
  return lines;
}
