/**
 * Tracing config from the HTTP connection manager's `tracing` block, validated once at the edge
 * (docs/tracing.md): `random_sampling` and an `envoy.tracers.opentelemetry` provider whose
 * `http_service.http_uri.uri` is the OTLP/HTTP (protobuf) endpoint. What the sidecar cannot honour
 * is an error (a NACK), never silently dropped. This module is light: the OpenTelemetry SDK is
 * loaded by trace-tracer.ts only once a listener's config carries tracing.
 */
import type { Parsed } from './cluster-from-xds';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export const OTEL_TRACER = 'envoy.tracers.opentelemetry';
export const OTEL_CONFIG_TYPE = 'type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig';

/** A listener's tracing: where spans go, how many new traces are sampled, who this sidecar is. */
export interface TracingConfig {
  /** OTLP/HTTP endpoint (protobuf), e.g. `http://127.0.0.1:4318/v1/traces`. */
  readonly endpoint: string;
  /** Probability (0–1) that a request without a sampled/unsampled parent starts a sampled trace. */
  readonly samplingRatio: number;
  /** The span resource's `service.name`: the workload (control plane: `app` label or pod name). */
  readonly serviceName: string;
  /** Export request timeout. */
  readonly timeoutMs: number;
}

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = (error: string): Parsed<never> => ({ ok: false, error });

/** Envoy's `Percent` (0–100; absent: 100, Envoy's default) → a probability. */
function percent(p: Obj | undefined, at: string): Parsed<number> {
  if (p === undefined) return ok(1);
  const v = Number(p.value ?? 0);
  if (!Number.isFinite(v) || v < 0 || v > 100) return fail(`${at}: must be a percentage from 0 to 100, got ${p.value}`);
  return ok(v / 100);
}

/** `tracing` of an HCM (`undefined` when absent or without a provider: Envoy then traces nothing). */
export function tracingOf(t: Obj | undefined, at: string): Parsed<TracingConfig | undefined> {
  if (!t?.provider) return ok(undefined);
  const pat = `${at}.provider`;
  if (t.provider.name !== OTEL_TRACER || t.provider.typed_config?.['@type'] !== OTEL_CONFIG_TYPE) {
    return fail(`${pat}: tracer ${t.provider.name ?? '(unnamed)'} (${t.provider.typed_config?.['@type'] ?? 'no typed_config'}) is not supported by this sidecar; use ${OTEL_TRACER}`);
  }
  for (const f of ['client_sampling', 'overall_sampling'] as const) {
    if (t[f] !== undefined && Number(t[f].value ?? 0) !== 100) return fail(`${at}.${f}: only 100 (the default) is supported by this sidecar`);
  }
  if (t.custom_tags?.length) return fail(`${at}.custom_tags: not supported by this sidecar`);
  const c: Obj = t.provider.typed_config;
  if (c.grpc_service) return fail(`${pat}.typed_config.grpc_service: OTLP over gRPC is not supported by this sidecar; use http_service`);
  if (c.sampler) return fail(`${pat}.typed_config.sampler: custom samplers are not supported by this sidecar`);
  if (c.resource_detectors?.length) return fail(`${pat}.typed_config.resource_detectors: not supported by this sidecar`);
  const uat = `${pat}.typed_config.http_service.http_uri`;
  const uri: unknown = c.http_service?.http_uri?.uri;
  if (typeof uri !== 'string' || !uri) return fail(`${uat}.uri is required`);
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return fail(`${uat}.uri: not a URL: ${JSON.stringify(uri)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return fail(`${uat}.uri: must be http:// or https://, got ${JSON.stringify(uri)}`);
  if (c.http_service.request_headers_to_add?.length) return fail(`${pat}.typed_config.http_service.request_headers_to_add: not supported by this sidecar`);
  const sampling = percent(t.random_sampling, `${at}.random_sampling`);
  if (!sampling.ok) return sampling;
  const timeout = c.http_service.http_uri.timeout;
  const timeoutMs = timeout ? Number(timeout.seconds ?? 0) * 1000 + Math.round(Number(timeout.nanos ?? 0) / 1e6) : 10_000;
  return ok({ endpoint: url.href, samplingRatio: sampling.value, serviceName: c.service_name || 'unknown', timeoutMs: timeoutMs > 0 ? timeoutMs : 10_000 });
}
