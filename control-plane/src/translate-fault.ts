/**
 * A route's `fault` and `mirror` → Envoy (docs/configuration.md, "Fault injection" and
 * "Mirroring"):
 *
 * - `fault` → the Route's `typed_per_filter_config["envoy.filters.http.fault"]`, an `HTTPFault`
 *   with `delay {fixed_delay, percentage}` and `abort {http_status, percentage}`; the listeners
 *   carry the fault filter (with an empty top-level config) before the router, as Envoy needs. Both
 *   sidecars and proxyless gRPC clients read it (gRFC A33; grpc-js-xds registers the filter).
 * - `mirror` → `RouteAction.request_mirror_policies [{cluster, runtime_fraction}]`, for sidecars
 *   only: gRPC clients do not mirror.
 *
 * Percentages are sent as `FractionalPercent` over a MILLION, so `0.05` (percent) keeps its
 * precision, as Istio does.
 */
import { TypeUrl, type FaultSpec, type MirrorSpec } from '@weft/api';

type Obj = Record<string, unknown>;

export const FAULT_FILTER_NAME = 'envoy.filters.http.fault';

/** The HTTP filter a listener lists before the router; per-route configs say what each route does. */
export const FAULT_FILTER: Obj = { name: FAULT_FILTER_NAME, typed_config: { '@type': TypeUrl.HttpFault } };

/** A percent (0–100, decimals allowed) as Envoy's `FractionalPercent`. */
export function fractionalPercent(percent: number): Obj {
  return { numerator: Math.round(percent * 10_000), denominator: 'MILLION' };
}

/** Route fields for `fault`: `typed_per_filter_config` with the route's `HTTPFault`. */
export function faultFields(fault: FaultSpec | undefined): Obj {
  if (!fault || (!fault.delay && !fault.abort)) return {};
  const config: Obj = { '@type': TypeUrl.HttpFault };
  if (fault.delay) config.delay = { fixed_delay: durationOf(fault.delay.fixedDelayMs), percentage: fractionalPercent(fault.delay.percent) };
  if (fault.abort) config.abort = { http_status: fault.abort.httpStatus, percentage: fractionalPercent(fault.abort.percent) };
  return { typed_per_filter_config: { [FAULT_FILTER_NAME]: config } };
}

/**
 * RouteAction fields for `mirror`: the mirror Service's cluster (`outbound|<port>||<host>`, the
 * port resolved as for a `service` backend by `clusterOf`). None for proxyless clients.
 */
export function mirrorFields(mirror: MirrorSpec | undefined, clusterOf: (m: MirrorSpec) => string, proxyless: boolean): Obj {
  if (!mirror || proxyless) return {};
  return { request_mirror_policies: [{ cluster: clusterOf(mirror), runtime_fraction: { default_value: fractionalPercent(mirror.percent) } }] };
}

function durationOf(ms: number): Obj {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}
