/**
 * The OpenTelemetry side of tracing (docs/tracing.md): one `MeshTracer` per distinct
 * `TracingConfig`, holding an SDK tracer provider (parent-based head sampling over a trace-id
 * ratio), the W3C and B3 propagators, and an OTLP/HTTP (protobuf) exporter behind a bounded queue.
 *
 * This module imports the OpenTelemetry SDK; only trace-span.ts requires it, and only once a
 * listener's config carries tracing, so a sidecar without tracing never loads the SDK (the idle
 * RSS budget, docs/performance.md).
 *
 * Never blocking the data path: a finished span is put in a bounded queue (`maxQueueSize`) and
 * returns at once; the `BatchSpanProcessor` exports batches in the background. When the queue is
 * full (a slow or dead collector) the span is dropped and counted (`weft_trace_spans_dropped_total`);
 * export failures are counted and logged at most once a minute. No export error reaches a request.
 */
import { ROOT_CONTEXT, SpanKind, trace, TraceFlags, type Attributes, type Context, type Span, type TextMapGetter, type TextMapSetter, type Tracer } from '@opentelemetry/api';
import { setGlobalErrorHandler, W3CTraceContextPropagator, type ExportResult } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler, AlwaysOnSampler, BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, type ReadableSpan, type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import type { IncomingHttpHeaders } from 'node:http';
import type { TracingConfig } from './trace-config';
import { TRACE_STATS, type TraceLocal } from './trace-stats';

/** At most this many finished spans wait for export; beyond, spans are dropped (and counted). */
export const MAX_QUEUE_SIZE = 2048;
const MAX_EXPORT_BATCH = 512;
const EXPORT_DELAY_MS = 1000;

const GETTER: TextMapGetter<IncomingHttpHeaders> = {
  keys: (c) => Object.keys(c),
  get: (c, k) => c[k],
};
const SETTER: TextMapSetter<Record<string, string>> = {
  set: (c, k, v) => {
    c[k] = v;
  },
};

const W3C = new W3CTraceContextPropagator();
const B3_MULTI = new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER });
const B3_SINGLE = new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });

/**
 * Queue bound and drop counting in front of the SDK's BatchSpanProcessor: the same queue (spans
 * leave it when the processor hands them to the exporter), counted here because the SDK only
 * reports drops in a debug log.
 */
class BoundedProcessor implements SpanProcessor {
  private queued = 0;
  private readonly batch: BatchSpanProcessor;

  constructor(exporter: SpanExporter, timeoutMs: number) {
    const counting: SpanExporter = {
      export: (spans, done) => {
        this.queued -= spans.length;
        exporter.export(spans, (r: ExportResult) => {
          if (r.code === 0) TRACE_STATS.exported(spans.length);
          else TRACE_STATS.exportFailed(spans.length, r.error);
          done(r);
        });
      },
      shutdown: () => exporter.shutdown(),
      forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
    };
    this.batch = new BatchSpanProcessor(counting, {
      maxQueueSize: MAX_QUEUE_SIZE,
      maxExportBatchSize: MAX_EXPORT_BATCH,
      scheduledDelayMillis: EXPORT_DELAY_MS,
      exportTimeoutMillis: timeoutMs,
    });
  }

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if (this.queued >= MAX_QUEUE_SIZE) return TRACE_STATS.dropped();
    this.queued++;
    this.batch.onEnd(span);
  }

  forceFlush(): Promise<void> {
    return this.batch.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.batch.shutdown();
  }
}

/** `n` random lowercase hex digits, not all zero (W3C: an all-zero id is invalid). */
function randomHex(n: number): string {
  let out = '';
  for (let i = 0; i < n; i += 8) out += ((Math.random() * 0x100000000) >>> 0).toString(16).padStart(8, '0');
  out = out.slice(0, n);
  return /^0+$/.test(out) ? randomHex(n) : out;
}

/** One mesh tracer: spans for one `TracingConfig` (endpoint, sampling, service name). */
export class MeshTracer {
  private readonly provider: BasicTracerProvider;
  private readonly tracer: Tracer;

  constructor(readonly config: TracingConfig, local: TraceLocal) {
    const exporter = new OTLPTraceExporter({ url: config.endpoint, timeoutMillis: config.timeoutMs });
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({
        'service.name': config.serviceName,
        'service.namespace': local.namespace,
        'k8s.namespace.name': local.namespace,
        'k8s.pod.name': local.podName,
        'telemetry.sdk.language': 'nodejs',
      }),
      // Head sampling happens in `start()` (a parent's decision is kept, a new trace by the ratio);
      // only what is sampled reaches the SDK, which records it.
      sampler: new ParentBasedSampler({ root: new AlwaysOnSampler(), remoteParentNotSampled: new AlwaysOffSampler() }),
      spanProcessors: [new BoundedProcessor(exporter, config.timeoutMs)],
    });
    this.tracer = this.provider.getTracer('weft-sidecar');
  }

  /** The parent context carried by a request: W3C `traceparent` first, else B3 (single or multi). */
  extract(headers: IncomingHttpHeaders): Context {
    const w3c = W3C.extract(ROOT_CONTEXT, headers, GETTER);
    return trace.getSpanContext(w3c) ? w3c : B3_MULTI.extract(ROOT_CONTEXT, headers, GETTER);
  }

  /**
   * Starts the hop's span (a child of `parent` when it carries one). Attributes only if recording.
   * Head sampling: a parent's decision is kept; a new trace is sampled with the configured ratio.
   * An unsampled hop never touches the SDK (no sampler, span or processor): it only needs a
   * context to propagate, the parent's trace id (or a new one) with a new span id, flags 00.
   */
  start(name: string, kind: SpanKind, parent: Context, attributes: () => Attributes): Span {
    const p = trace.getSpanContext(parent);
    const ratio = this.config.samplingRatio;
    const sampled = p ? (p.traceFlags & TraceFlags.SAMPLED) !== 0 : ratio >= 1 || (ratio > 0 && Math.random() < ratio);
    if (!sampled) {
      return trace.wrapSpanContext({
        traceId: p?.traceId ?? randomHex(32),
        spanId: randomHex(16),
        traceFlags: TraceFlags.NONE,
        ...(p?.traceState ? { traceState: p.traceState } : {}),
      });
    }
    const span = this.tracer.startSpan(name, { kind }, parent);
    if (span.isRecording()) span.setAttributes(attributes());
    return span;
  }

  /**
   * The propagation headers for the next hop, with `span` as parent: W3C `traceparent` (and
   * `tracestate`) and B3 multi-header always, the B3 single header too when the request came with one.
   */
  inject(span: Span, b3Single: boolean): Record<string, string> {
    const ctx = trace.setSpan(ROOT_CONTEXT, span);
    const out: Record<string, string> = {};
    W3C.inject(ctx, out, SETTER);
    B3_MULTI.inject(ctx, out, SETTER);
    if (b3Single) B3_SINGLE.inject(ctx, out, SETTER);
    return out;
  }

  /** Exports what is queued (tests, shutdown). */
  flush(): Promise<void> {
    return this.provider.forceFlush();
  }

  /** Set by `shutdown`: `meshTracer` then makes a new tracer for the same config. */
  stopped = false;

  /** Stops exporting; queued spans get one last export attempt. Idempotent. */
  shutdown(): Promise<void> {
    this.stopped = true;
    return this.provider.shutdown();
  }
}

const tracers = new Map<string, MeshTracer>();
const byConfig = new WeakMap<TracingConfig, MeshTracer>();
/** Tracers kept at once; a sidecar normally has one (all its listeners share the mesh's tracing). */
const MAX_TRACERS = 4;

/**
 * The tracer for `config`, created on first use and kept for later configs with the same values.
 * A config change (endpoint, sampling) makes a new one; beyond `MAX_TRACERS` the oldest is shut
 * down (its queued spans get a last export; spans still open on it end unexported).
 */
export function meshTracer(config: TracingConfig, local: TraceLocal): MeshTracer {
  // Per request: one WeakMap lookup on the (immutable, validated-once) config object.
  const known = byConfig.get(config);
  if (known && !known.stopped) return known;
  const key = `${config.endpoint}\u0000${config.samplingRatio}\u0000${config.serviceName}\u0000${config.timeoutMs}`;
  let t = tracers.get(key);
  if (!t) {
    if (tracers.size === 0) setGlobalErrorHandler((e) => TRACE_STATS.exportFailed(0, e));
    if (tracers.size >= MAX_TRACERS) {
      const [oldest, old] = tracers.entries().next().value as [string, MeshTracer];
      tracers.delete(oldest);
      void old.shutdown().catch(() => undefined);
    }
    tracers.set(key, (t = new MeshTracer(config, local)));
  }
  byConfig.set(config, t);
  return t;
}

/** Flushes every tracer (tests). Never rejects: an export that fails is counted, not thrown. */
export async function flushTracers(): Promise<void> {
  await Promise.allSettled([...tracers.values()].map((t) => t.flush()));
}

/**
 * Stops every tracer: one last export of what is queued, bounded by `timeoutMs`, then nothing is
 * held (sockets, timers). Tracers made later start afresh. Idempotent.
 */
export async function shutdownTracers(timeoutMs = 2000): Promise<void> {
  const all = [...tracers.values()];
  tracers.clear();
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs).unref()));
  await Promise.race([Promise.allSettled(all.map((t) => t.shutdown())), limit]);
  clearTimeout(timer);
}

export { SpanKind };
