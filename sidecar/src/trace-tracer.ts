/**
 * Tracers (docs/tracing.md): one `MeshTracer` per distinct `TracingConfig` (endpoint, sampling,
 * service name, timeout), holding the OTLP resource of this sidecar, encoded once, and the export
 * queue for that endpoint (trace-export.ts).
 *
 * Weft records and encodes its proxy spans itself instead of through the OpenTelemetry SDK
 * (docs/tracing.md, "Why not the SDK"): the SDK's span objects, BatchSpanProcessor and OTLP
 * serializer cost ~16 µs of CPU per exported span, about 40% of what the sidecar spends proxying a
 * request; this path costs a few µs. `@opentelemetry/api` still names the span kinds.
 */
import { SpanKind } from '@opentelemetry/api';
import type { TracingConfig } from './trace-config';
import { resourceAndScope } from './trace-encode';
import { SpanExporter } from './trace-export';
import type { TraceLocal } from './trace-stats';

export { MAX_QUEUE_SIZE } from './trace-export';

/** The instrumentation scope of every span (`InstrumentationScope.name`). */
export const SCOPE_NAME = 'weft-sidecar';

/** One mesh tracer: where spans of one `TracingConfig` go, and the resource they are sent with. */
export class MeshTracer {
  readonly exporter: SpanExporter;
  /** Set by `shutdown`: `meshTracer` then makes a new tracer for the same config. */
  stopped = false;

  constructor(readonly config: TracingConfig, local: TraceLocal) {
    const { resource, scope } = resourceAndScope({
      'service.name': config.serviceName,
      'service.namespace': local.namespace,
      'k8s.namespace.name': local.namespace,
      'k8s.pod.name': local.podName,
      'telemetry.sdk.language': 'nodejs',
      'telemetry.sdk.name': SCOPE_NAME,
    }, SCOPE_NAME);
    this.exporter = new SpanExporter(config.endpoint, config.timeoutMs, resource, scope);
  }

  /** Exports what is queued (tests, shutdown). */
  flush(): Promise<void> {
    return this.exporter.flush();
  }

  /** Stops exporting; queued spans get one last export attempt, bounded by `timeoutMs`. Idempotent. */
  shutdown(timeoutMs?: number): Promise<void> {
    this.stopped = true;
    return this.exporter.shutdown(timeoutMs);
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
  // Per sampled request: one WeakMap lookup on the (immutable, validated-once) config object.
  const known = byConfig.get(config);
  if (known && !known.stopped) return known;
  const key = `${config.endpoint}\u0000${config.samplingRatio}\u0000${config.serviceName}\u0000${config.timeoutMs}`;
  let t = tracers.get(key);
  if (!t) {
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
  await Promise.allSettled(all.map((t) => t.shutdown(timeoutMs)));
}

export { SpanKind };
