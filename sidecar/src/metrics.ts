/**
 * The sidecar's Prometheus metrics (SPEC.md "Metrics and traces", served on 15020 `/metrics` by
 * `MetricsServer` in admin.ts). A deliberately small registry: counters and gauges with a fixed
 * label set, rendered in the Prometheus text format. prom-client alone adds ~12 MB of RSS, a fifth
 * of the sidecar's idle budget (docs/performance.md); issue 6 decides what the full set needs.
 *
 * Updates are O(1) map writes with no allocation beyond the first use of a label combination, so
 * the data path may call them per request. Labels must be bounded (no paths, ids or peer ports).
 */

type Labels<L extends string> = { readonly [K in L]: string };

abstract class Metric<L extends string> {
  protected readonly values = new Map<string, { labels: Labels<L>; value: number }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly L[],
    private readonly type: 'counter' | 'gauge',
  ) {}

  protected entry(labels: Labels<L>): { labels: Labels<L>; value: number } {
    const key = this.labelNames.map((n) => labels[n]).join('\u0000');
    let e = this.values.get(key);
    if (!e) this.values.set(key, (e = { labels, value: 0 }));
    return e;
  }

  /** Drops one label combination (a departed peer, a replaced certificate). */
  remove(labels: Labels<L>): void {
    this.values.delete(this.labelNames.map((n) => labels[n]).join('\u0000'));
  }

  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} ${this.type}\n`;
    for (const { labels, value } of this.values.values()) {
      const l = this.labelNames.map((n) => `${n}="${escapeLabel(labels[n])}"`).join(',');
      out += `${this.name}${l ? `{${l}}` : ''} ${formatValue(value)}\n`;
    }
    return out;
  }
}

export class Counter<L extends string = never> extends Metric<L> {
  constructor(name: string, help: string, labelNames: readonly L[] = []) {
    if (!name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`);
    super(name, help, labelNames, 'counter');
  }

  inc(labels: Labels<L>, by = 1): void {
    this.entry(labels).value += by;
  }

  get(labels: Labels<L>): number {
    return this.entry(labels).value;
  }
}

export class Gauge<L extends string = never> extends Metric<L> {
  constructor(name: string, help: string, labelNames: readonly L[] = []) {
    super(name, help, labelNames, 'gauge');
  }

  set(labels: Labels<L>, value: number): void {
    this.entry(labels).value = value;
  }

  get(labels: Labels<L>): number {
    return this.entry(labels).value;
  }
}

/** One sidecar's metrics. Register new ones here so `/metrics` lists them all. */
export class MetricsRegistry {
  private readonly metrics: Metric<string>[] = [];

  counter<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    return this.add(new Counter<L>(name, help, labelNames));
  }

  gauge<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
    return this.add(new Gauge<L>(name, help, labelNames));
  }

  /** The Prometheus text exposition format (version 0.0.4). */
  render(): string {
    return this.metrics.map((m) => m.render()).join('');
  }

  private add<M extends Metric<any>>(m: M): M {
    if (this.metrics.some((x) => x.name === m.name)) throw new Error(`metric ${m.name} registered twice`);
    this.metrics.push(m);
    return m;
  }
}

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}
