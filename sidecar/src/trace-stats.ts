/**
 * What tracing needs from the sidecar process, set once at start (`configureTracing`, sidecar.ts):
 * who this sidecar is (namespace, pod, SPIFFE ID) for span attributes, and where span drops and
 * export failures are counted (the sidecar's metrics registry) and logged. Light on purpose: the
 * listeners import it; the OpenTelemetry SDK is loaded elsewhere, and only when tracing is on.
 */
import type { Logger } from '@weft/api';
import type { MetricsRegistry } from './metrics';

/** This sidecar's own workload facts (span attributes and resource). */
export interface TraceLocal {
  readonly namespace: string;
  readonly podName: string;
  /** The workload's SPIFFE ID when it has an identity. */
  readonly spiffeId?: string | undefined;
}

interface CounterLike {
  inc(labels: Record<string, never>, by?: number): void;
}

const NONE: CounterLike = { inc: () => undefined };
const FAILURE_LOG_INTERVAL_MS = 60_000;

/** Process-wide tracing counters; `configureTracing` points them at the metrics registry. */
class TraceStats {
  local: TraceLocal = { namespace: 'unknown', podName: 'unknown' };
  private droppedCounter: CounterLike = NONE;
  private exportedCounter: CounterLike = NONE;
  private failedCounter: CounterLike = NONE;
  private log: Logger | undefined;
  private lastFailureLog = -Infinity;
  droppedTotal = 0;
  exportedTotal = 0;
  failedTotal = 0;

  configure(opts: { metrics?: MetricsRegistry; log?: Logger; local: TraceLocal }): void {
    this.local = opts.local;
    this.log = opts.log;
    if (opts.metrics) {
      this.droppedCounter = opts.metrics.counter('weft_trace_spans_dropped_total', 'Finished spans dropped because the export queue was full (a slow or unreachable OTLP endpoint).');
      this.exportedCounter = opts.metrics.counter('weft_trace_spans_exported_total', 'Spans the OTLP endpoint accepted.');
      this.failedCounter = opts.metrics.counter('weft_trace_export_failures_total', 'Span batches (or SDK errors) that failed to export.');
      // Exposed at 0 from the start (a series that appears only on the first drop is easy to miss).
      for (const c of [this.droppedCounter, this.exportedCounter, this.failedCounter]) c.inc({}, 0);
    }
  }

  dropped(): void {
    this.droppedTotal++;
    this.droppedCounter.inc({});
  }

  exported(spans: number): void {
    this.exportedTotal += spans;
    this.exportedCounter.inc({}, spans);
  }

  exportFailed(spans: number, error: unknown): void {
    this.failedTotal++;
    this.failedCounter.inc({});
    const now = performance.now();
    if (now - this.lastFailureLog < FAILURE_LOG_INTERVAL_MS) return;
    this.lastFailureLog = now;
    this.log?.warn('trace export failed; spans are dropped, traffic is unaffected (logged at most once a minute)', { spans, error: String((error as Error)?.message ?? error) });
  }
}

export const TRACE_STATS = new TraceStats();

/** Called once by the sidecar at start: identity for span attributes, metrics and log for export problems. */
export function configureTracing(opts: { metrics?: MetricsRegistry; log?: Logger; local: TraceLocal }): void {
  TRACE_STATS.configure(opts);
}
