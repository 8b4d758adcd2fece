/**
 * The traffic-management parts of an Envoy `Cluster` → typed values (config-from-xds.ts calls
 * these from `cluster()`): which LB policy, outlier detection, circuit breakers and
 * `max_requests_per_connection`. Each returns a value or an error string (the NACK's detail).
 * docs/configuration.md ("Load balancing", "Outlier detection", "Connection pool") is the contract.
 */
import type { CircuitBreakers, Cluster, LbPolicy, OutlierDetection, UpstreamTls } from './config';
import { upstreamTlsOf } from './tls-from-xds';

type Obj = Record<string, any>;
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = (error: string): Parsed<never> => ({ ok: false, error });

const LB_ENUM: Record<string, LbPolicy> = { ROUND_ROBIN: 'ROUND_ROBIN', LEAST_REQUEST: 'LEAST_REQUEST', RANDOM: 'RANDOM' };

/** `type_url` inside a TypedStruct for Weft's peak-EWMA policy (there is no Envoy proto for it). */
export const PEAK_EWMA_TYPE_URL = 'type.weft.dev/weft.lb.v1alpha1.PeakEwma';
const TYPED_STRUCT = new Set(['type.googleapis.com/xds.type.v3.TypedStruct', 'type.googleapis.com/udpa.type.v1.TypedStruct']);
const ENVOY_LB = 'type.googleapis.com/envoy.extensions.load_balancing_policies.';
const TYPED_LB: Record<string, LbPolicy> = {
  [`${ENVOY_LB}least_request.v3.LeastRequest`]: 'LEAST_REQUEST',
  [`${ENVOY_LB}round_robin.v3.RoundRobin`]: 'ROUND_ROBIN',
  [`${ENVOY_LB}random.v3.Random`]: 'RANDOM',
};
export const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

type LbChoice = Pick<Cluster, 'lbPolicy' | 'peakEwma'>;

/**
 * `load_balancing_policy` when present (the first policy of its list this sidecar implements,
 * as Envoy and gRPC choose), else the `lb_policy` enum.
 */
export function lbPolicyOf(o: Obj): Parsed<LbChoice> {
  const policies: Obj[] | undefined = o.load_balancing_policy?.policies;
  if (policies?.length) {
    const seen: string[] = [];
    for (const p of policies) {
      const tc = p.typed_extension_config?.typed_config ?? {};
      const type: string = tc['@type'] ?? tc.type_url ?? '?';
      if (TYPED_STRUCT.has(type)) {
        seen.push(tc.type_url ?? '?');
        if (tc.type_url !== PEAK_EWMA_TYPE_URL) continue;
        const fields: Obj = tc.value?.fields ?? {};
        const decay = durationField(fields.decay, 'decay');
        const rtt = durationField(fields.default_rtt, 'default_rtt');
        if (!decay.ok) return decay;
        if (!rtt.ok) return rtt;
        return ok({ lbPolicy: 'PEAK_EWMA', peakEwma: { decayMs: decay.value ?? 10_000, defaultRttMs: rtt.value ?? 30 } });
      }
      seen.push(type);
      const known = TYPED_LB[type];
      if (known) return ok({ lbPolicy: known });
    }
    return fail(`load_balancing_policy: none of the policies is supported by this sidecar (${seen.join(', ')})`);
  }
  const lbPolicy = LB_ENUM[o.lb_policy ?? 'ROUND_ROBIN'];
  return lbPolicy ? ok({ lbPolicy }) : fail(`lb_policy ${o.lb_policy} is not supported`);
}

/** A google.protobuf.Value holding a protobuf-JSON duration ("10s", "0.030s"); absent: undefined. */
function durationField(v: Obj | undefined, name: string): Parsed<number | undefined> {
  if (v === undefined) return ok(undefined);
  const s = v.stringValue;
  const m = typeof s === 'string' ? /^(\d+(?:\.\d+)?)s$/.exec(s) : null;
  if (!m) return fail(`load_balancing_policy: PeakEwma ${name} must be a duration such as "10s"`);
  const ms = Number(m[1]) * 1000;
  if (!(ms > 0)) return fail(`load_balancing_policy: PeakEwma ${name} must be more than 0`);
  return ok(ms);
}

/**
 * `outlier_detection` (absent: none). The consecutive-5xx and gateway-failure detectors are
 * enforced; success-rate and failure-percentage ejection must be off (enforcing 0), since the
 * sidecar does not implement them.
 */
export function outlierDetectionOf(o: Obj): Parsed<OutlierDetection | undefined> {
  const od: Obj | undefined = o.outlier_detection;
  if (!od) return ok(undefined);
  const u32 = (w: Obj | undefined, dflt: number): number => (w?.value === undefined ? dflt : Number(w.value));
  // Envoy's defaults: success-rate ejection is enforced unless told otherwise.
  if (u32(od.enforcing_success_rate, 100) !== 0) return fail('outlier_detection: success-rate ejection is not supported by this sidecar (set enforcing_success_rate to 0)');
  if (u32(od.enforcing_failure_percentage, 0) !== 0) return fail('outlier_detection: failure-percentage ejection is not supported by this sidecar');
  if (od.split_external_local_origin_errors) return fail('outlier_detection: split_external_local_origin_errors is not supported by this sidecar');
  const enforce5xx = u32(od.enforcing_consecutive_5xx, 100) > 0;
  const enforceGateway = u32(od.enforcing_consecutive_gateway_failure, 0) > 0;
  const base = od.base_ejection_time ? durationMs(od.base_ejection_time) : 30_000;
  return ok({
    consecutive5xx: enforce5xx ? u32(od.consecutive_5xx, 5) : 0,
    consecutiveGatewayFailure: enforceGateway ? u32(od.consecutive_gateway_failure, 5) : 0,
    intervalMs: od.interval ? durationMs(od.interval) : 10_000,
    baseEjectionTimeMs: base,
    maxEjectionTimeMs: od.max_ejection_time ? durationMs(od.max_ejection_time) : Math.max(300_000, base),
    maxEjectionPercent: Math.min(100, u32(od.max_ejection_percent, 10)),
  });
}

/** `circuit_breakers.thresholds` for the DEFAULT priority (absent: undefined, Envoy's defaults apply). */
export function circuitBreakersOf(o: Obj): Parsed<CircuitBreakers | undefined> {
  const thresholds: Obj[] = o.circuit_breakers?.thresholds ?? [];
  const t = thresholds.find((x) => (x.priority ?? 'DEFAULT') === 'DEFAULT');
  if (!t) return ok(undefined);
  const n = (w: Obj | undefined): number => (w?.value === undefined ? 1024 : Number(w.value));
  return ok({ maxConnections: n(t.max_connections), maxPendingRequests: n(t.max_pending_requests) });
}

/**
 * Requests per upstream connection: `typed_extension_protocol_options[HttpProtocolOptions]
 * .common_http_protocol_options.max_requests_per_connection`, else the deprecated cluster field.
 * 0 or absent: unlimited.
 */
export function maxRequestsPerConnectionOf(o: Obj): Parsed<number> {
  const opts: Obj | undefined = o.typed_extension_protocol_options?.[HTTP_PROTOCOL_OPTIONS];
  if (opts && opts['@type'] !== `type.googleapis.com/${HTTP_PROTOCOL_OPTIONS}`) {
    return fail(`typed_extension_protocol_options: ${HTTP_PROTOCOL_OPTIONS} holds ${opts['@type'] ?? opts.type_url}`);
  }
  const v = opts?.common_http_protocol_options?.max_requests_per_connection?.value ?? o.max_requests_per_connection?.value;
  return ok(v === undefined ? 0 : Number(v));
}

function durationMs(d: Obj): number {
  return Number(d.seconds ?? 0) * 1000 + Math.round(Number(d.nanos ?? 0) / 1e6);
}

/** Endpoint (and `transport_socket_matches`) metadata namespace Envoy matches transports on. */
export const TRANSPORT_SOCKET_MATCH_NS = 'envoy.transport_socket_match';

/**
 * The cluster's TLS: `transport_socket` and `transport_socket_matches` (auto mTLS: Istio's
 * `tlsMode` endpoint metadata picks the mTLS entry). docs/protocols.md "mTLS".
 */
export function clusterTlsOf(o: Obj, at: string): Parsed<Pick<Cluster, 'tls' | 'transportSocketMatches'>> {
  const own = upstreamTlsOf(o.transport_socket, at);
  if (!own.ok) return own;
  const matches: NonNullable<Cluster['transportSocketMatches']>[number][] = [];
  for (const [i, m] of ((o.transport_socket_matches ?? []) as Obj[]).entries()) {
    const mat = `${at}.transport_socket_matches[${i}]`;
    const tls = upstreamTlsOf(m.transport_socket, mat);
    if (!tls.ok) return tls;
    const match: Record<string, string> = {};
    for (const [k, v] of Object.entries((m.match?.fields ?? {}) as Obj)) {
      if (typeof v?.stringValue !== 'string') return fail(`${mat}.match.${k}: only string values are supported`);
      match[k] = v.stringValue;
    }
    matches.push({ name: String(m.name ?? ''), match, ...(tls.value ? { tls: tls.value } : {}) });
  }
  return ok({ ...(own.value ? { tls: own.value } : {}), ...(matches.length ? { transportSocketMatches: matches } : {}) });
}

/** An endpoint's `envoy.transport_socket_match` metadata (string values), if any. */
export function transportMatchOf(metadata: Obj | undefined): Record<string, string> | undefined {
  const fields: Obj | undefined = metadata?.filter_metadata?.[TRANSPORT_SOCKET_MATCH_NS]?.fields;
  if (!fields) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) if (typeof v?.stringValue === 'string') out[k] = v.stringValue;
  return out;
}

/** The transport for `endpoint` under `cluster` (Envoy's match order); `undefined`: plaintext. */
export function endpointTls(cluster: Pick<Cluster, 'tls' | 'transportSocketMatches'>, match: Readonly<Record<string, string>> | undefined): UpstreamTls | undefined {
  for (const m of cluster.transportSocketMatches ?? []) {
    if (Object.entries(m.match).every(([k, v]) => match?.[k] === v)) return m.tls;
  }
  return cluster.tls;
}
