/**
 * The sidecar's Prometheus metrics (SPEC.md "Metrics and traces", served on 15020 `/metrics` by
 * `MetricsServer` in admin.ts), on prom-client's core modules only: its registry, counter, gauge
 * and histogram, loaded by deep require. The package root also loads default metrics, summaries,
 * the push gateway and cluster support, ~12 MB of RSS; these four cost ~0.1–0.2 MB
 * (docs/performance.md "Memory").
 *
 * The wrappers keep label names typed; `child()` resolves a label combination once (per
 * cluster, endpoint, connection, code: metrics-requests.ts), so a request only increments: ~0.2 µs
 * for a request's counter and histogram, against ~1.5 µs through prom-client's labelled calls,
 * which validate and hash the labels on every call.
 * Labels must be bounded (no paths, ids or peer ports).
 */
import type * as Prom from 'prom-client';

// Deep requires: the core modules, without prom-client's index (see above).
/* eslint-disable @typescript-eslint/no-var-requires */
const PromRegistry = require('prom-client/lib/registry') as typeof Prom.Registry;
const PromCounter = require('prom-client/lib/counter') as typeof Prom.Counter;
const PromGauge = require('prom-client/lib/gauge') as typeof Prom.Gauge;
const PromHistogram = require('prom-client/lib/histogram') as typeof Prom.Histogram;
/* eslint-enable @typescript-eslint/no-var-requires */

export type Labels<L extends string> = { readonly [K in L]: string };

export class Counter<L extends string = never> {
  constructor(private readonly m: Prom.Counter<L>, readonly labelNames: readonly L[]) {}

  inc(labels: Labels<L>, by = 1): void {
    if (this.labelNames.length) this.m.inc(labels as Prom.LabelValues<L>, by);
    else this.m.inc(by);
  }

  /** The current value (0 for a combination never seen). */
  get(labels: Labels<L>): number {
    const hash = hashOf(this.labelNames, labels);
    return (this.m as unknown as Internal).hashMap[hash]?.value ?? 0;
  }

  /**
   * One label combination, resolved once: `inc` then finds its series by a precomputed key and
   * adds, with no label validation, hashing or allocation (what prom-client's `inc(labels)` does
   * per call). A removed series is created again by prom-client on the next `inc`.
   */
  child(labels: Labels<L>): { inc(by?: number): void } {
    const hash = hashOf(this.labelNames, labels);
    const m = this.m;
    const map = (): Internal['hashMap'] => (m as unknown as Internal).hashMap;
    return {
      inc(by = 1): void {
        const e = map()[hash];
        if (e && e.value !== undefined) e.value += by;
        else m.inc(labels as Prom.LabelValues<L>, by);
      },
    };
  }

  /** Drops one label combination (a departed destination, a replaced certificate). */
  remove(labels: Labels<L>): void {
    this.m.remove(labels as Prom.LabelValues<L>);
  }
}

export class Gauge<L extends string = never> {
  constructor(private readonly m: Prom.Gauge<L>, readonly labelNames: readonly L[]) {}

  set(labels: Labels<L>, value: number): void {
    if (this.labelNames.length) this.m.set(labels as Prom.LabelValues<L>, value);
    else this.m.set(value);
  }

  inc(labels: Labels<L>, by = 1): void {
    if (this.labelNames.length) this.m.inc(labels as Prom.LabelValues<L>, by);
    else this.m.inc(by);
  }

  get(labels: Labels<L>): number {
    return (this.m as unknown as Internal).hashMap[hashOf(this.labelNames, labels)]?.value ?? 0;
  }

  remove(labels: Labels<L>): void {
    this.m.remove(labels as Prom.LabelValues<L>);
  }
}

export class Histogram<L extends string = never> {
  constructor(private readonly m: Prom.Histogram<L>, readonly labelNames: readonly L[]) {}

  observe(labels: Labels<L>, value: number): void {
    if (this.labelNames.length) this.m.observe(labels as Prom.LabelValues<L>, value);
    else this.m.observe(value);
  }

  /** One label combination, resolved once (see `Counter.child`); `observe` updates its buckets directly. */
  child(labels: Labels<L>): { observe(value: number): void } {
    const hash = hashOf(this.labelNames, labels);
    const m = this.m;
    const bounds = (m as unknown as { upperBounds: number[] }).upperBounds;
    return {
      observe(value: number): void {
        const e = (m as unknown as Internal).hashMap[hash] as HistogramEntry | undefined;
        if (!e || !e.bucketValues) return m.observe(labels as Prom.LabelValues<L>, value);
        e.sum += value;
        e.count += 1;
        for (let i = 0; i < bounds.length; i++) {
          if (value <= bounds[i]!) {
            e.bucketValues[bounds[i]!]! += 1;
            return;
          }
        }
      },
    };
  }

  /** How many observations a label combination has (0 when never seen). */
  count(labels: Labels<L>): number {
    return (this.m as unknown as Internal).hashMap[hashOf(this.labelNames, labels)]?.count ?? 0;
  }

  remove(labels: Labels<L>): void {
    this.m.remove(labels as Prom.LabelValues<L>);
  }
}

/** Seconds: 5 ms … 10 s (issue 6's request duration buckets). */
export const DURATION_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** One sidecar's metrics. Register new ones here so `/metrics` lists them all. */
export class MetricsRegistry {
  private readonly registry = new PromRegistry();

  counter<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    if (!name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`);
    return new Counter<L>(new PromCounter<L>({ name, help, labelNames: labelNames as L[], registers: [this.registry] }), labelNames);
  }

  /**
   * A counter whose values are read at scrape time from state kept elsewhere (`read` yields each
   * label combination's current total): nothing to do on the data path.
   */
  counterFrom<L extends string>(name: string, help: string, labelNames: readonly L[], read: () => Iterable<readonly [Labels<L>, number]>): void {
    if (!name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`);
    new PromCounter<L>({
      name, help, labelNames: labelNames as L[], registers: [this.registry],
      collect(this: Prom.Counter<L>) {
        this.reset();
        for (const [labels, value] of read()) if (value > 0) this.inc(labels as Prom.LabelValues<L>, value);
      },
    });
  }

  gauge<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
    return new Gauge<L>(new PromGauge<L>({ name, help, labelNames: labelNames as L[], registers: [this.registry] }), labelNames);
  }

  histogram<L extends string = never>(name: string, help: string, labelNames: readonly L[] = [], buckets: readonly number[] = DURATION_BUCKETS): Histogram<L> {
    return new Histogram<L>(new PromHistogram<L>({ name, help, labelNames: labelNames as L[], buckets: [...buckets], registers: [this.registry] }), labelNames);
  }

  /** The Prometheus text exposition format (version 0.0.4). */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** prom-client's per-series storage (15.x): read by `get`/`count`, updated in place by `child()`. */
interface Internal {
  readonly hashMap: Record<string, { value?: number; count?: number }>;
}

interface HistogramEntry {
  sum: number;
  count: number;
  readonly bucketValues: Record<number, number>;
}

/** prom-client's series key: `name:value,` for each of the sorted label names. */
function hashOf(labelNames: readonly string[], labels: Record<string, string>): string {
  return [...labelNames].sort().map((n) => `${n}:${labels[n]},`).join('');
}
