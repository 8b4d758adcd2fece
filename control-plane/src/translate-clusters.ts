/**
 * Services and subsets → Envoy `Cluster`s and their `ClusterLoadAssignment`s, with the policy's
 * load balancing, outlier detection and connection-pool limits (docs/configuration.md, "Load
 * balancing", "Outlier detection", "Connection pool").
 */
import { serviceHost, type Service, type ServicePort, type TrafficPolicy } from '@weft/api';
import type { World } from './world';
import { endpointsFor, inSubset, loadAssignment } from './translate-endpoints';
import { outboundClusterName } from './names';
import { autoMtlsMatches } from './peer-auth-tls';

type Obj = Record<string, unknown>;

export interface ClusterPair {
  readonly cluster: Obj;
  readonly assignment: Obj;
}

/** Weft's peak-EWMA policy has no Envoy proto: it travels as a `TypedStruct` of this type. */
export const PEAK_EWMA_TYPE_URL = 'type.weft.dev/weft.lb.v1alpha1.PeakEwma';
export const PEAK_EWMA_POLICY_NAME = 'weft.load_balancing_policies.peak_ewma';
/** Linkerd's defaults, sent explicitly so every sidecar agrees. */
const PEAK_EWMA_DEFAULTS = { decay: '10s', default_rtt: '0.030s' };
const TYPED_STRUCT = 'type.googleapis.com/xds.type.v3.TypedStruct';
const LEAST_REQUEST = 'type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest';
export const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

const LB_POLICY: Record<string, string> = {
  RoundRobin: 'ROUND_ROBIN',
  Random: 'RANDOM',
  LeastRequest: 'LEAST_REQUEST',
  EWMA: 'LEAST_REQUEST',
};

/**
 * The outbound clusters of one Service port: the whole Service, then one per policy subset.
 * `proxyless`: gRPC clients get ROUND_ROBIN only (and reach pods directly); outlier detection and
 * pool limits are for sidecars (gRPC implements neither consecutive-error ejection nor these limits).
 */
export function outboundClusters(world: World, svc: Service, port: ServicePort, policy: TrafficPolicy | undefined, proxyless: boolean): ClusterPair[] {
  const host = serviceHost(svc.meta.namespace, svc.meta.name);
  const endpoints = endpointsFor(world, svc, port);
  const traffic = proxyless ? { lb_policy: 'ROUND_ROBIN' } : trafficFields(policy);
  const groups: { subset: string; labels?: Readonly<Record<string, string>> }[] = [{ subset: '' }];
  for (const s of policy?.subsets ?? []) groups.push({ subset: s.name, labels: s.labels });
  // Auto mTLS (sidecars only): when some endpoint's pod has a sidecar with an identity, mTLS to
  // those endpoints, verifying the Service's pods' identities (Istio's SAN list); plaintext to the rest.
  const sans = [...new Set(endpoints.flatMap((e) => (e.identity ? [e.identity] : [])))].sort();
  const mtls = !proxyless && endpoints.some((e) => e.mtls);
  return groups.map(({ subset, labels }) => {
    const name = outboundClusterName(port.port, subset, host);
    return {
      cluster: { ...edsCluster(name), ...traffic, ...(mtls ? { transport_socket_matches: autoMtlsMatches(`outbound_.${port.port}_.${subset}_.${host}`, sans) } : {}) },
      assignment: loadAssignment(name, endpoints.filter((e) => inSubset(e, labels)), !proxyless),
    };
  });
}

/** A sidecar's cluster fields for `policy`: LB policy, outlier detection, pool limits. */
export function trafficFields(policy: TrafficPolicy | undefined): Obj {
  // SPEC.md: EWMA (power of two choices over peak EWMA) is the default algorithm.
  const algorithm = policy?.loadBalancer?.algorithm ?? 'EWMA';
  const out: Obj = { lb_policy: LB_POLICY[algorithm] ?? 'ROUND_ROBIN' };
  if (algorithm === 'EWMA') {
    // Envoy has no peak-EWMA enum. `load_balancing_policy` supersedes `lb_policy` for clients that
    // read it, and each takes the first policy it implements: Weft sidecars peak EWMA, an Envoy
    // least request (P2C, choice_count 2). Clients that ignore the field read LEAST_REQUEST.
    out.load_balancing_policy = {
      policies: [
        {
          typed_extension_config: {
            name: PEAK_EWMA_POLICY_NAME,
            typed_config: {
              '@type': TYPED_STRUCT,
              type_url: PEAK_EWMA_TYPE_URL,
              value: { fields: Object.fromEntries(Object.entries(PEAK_EWMA_DEFAULTS).map(([k, v]) => [k, { stringValue: v }])) },
            },
          },
        },
        {
          typed_extension_config: {
            name: 'envoy.load_balancing_policies.least_request',
            typed_config: { '@type': LEAST_REQUEST, choice_count: { value: 2 } },
          },
        },
      ],
    };
  }
  const od = policy?.outlierDetection;
  if (od) {
    const n = Math.min(od.consecutive5xxErrors ?? 5, UINT32_MAX);
    const enforcing = { value: n > 0 ? 100 : 0 };
    out.outlier_detection = {
      // Gateway errors (502/503/504, no connection, reset, timeout) are 5xx too; the gateway
      // detector, off by default in Envoy, is turned on with the same count so both fire alike.
      consecutive_5xx: { value: n },
      enforcing_consecutive_5xx: enforcing,
      consecutive_gateway_failure: { value: n },
      enforcing_consecutive_gateway_failure: enforcing,
      // Istio's outlierDetection has no success-rate ejection; Envoy enforces it unless told not to.
      enforcing_success_rate: { value: 0 },
      interval: duration(od.intervalMs ?? 10_000),
      base_ejection_time: duration(od.baseEjectionTimeMs ?? 30_000),
      max_ejection_percent: { value: od.maxEjectionPercent ?? 10 },
    };
  }
  const pool = policy?.connectionPool;
  const threshold: Obj = {};
  if (pool?.maxConnections) threshold.max_connections = u32(pool.maxConnections);
  if (pool?.maxPendingRequests) threshold.max_pending_requests = u32(pool.maxPendingRequests);
  if (Object.keys(threshold).length) out.circuit_breakers = { thresholds: [{ priority: 'DEFAULT', ...threshold }] };
  if (pool?.maxRequestsPerConnection) {
    // The non-deprecated home of max_requests_per_connection. The upstream protocol must be named
    // there: HTTP/1.1, what sidecars speak to each other today.
    out.typed_extension_protocol_options = {
      [HTTP_PROTOCOL_OPTIONS]: {
        '@type': `type.googleapis.com/${HTTP_PROTOCOL_OPTIONS}`,
        common_http_protocol_options: { max_requests_per_connection: u32(pool.maxRequestsPerConnection) },
        explicit_http_config: { http_protocol_options: {} },
      },
    };
  }
  return out;
}

export function edsCluster(name: string, lbPolicy = 'ROUND_ROBIN'): Obj {
  return {
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: name },
    connect_timeout: { seconds: 1 },
    lb_policy: lbPolicy,
  };
}

/** A STATIC cluster with its endpoints inline (the local app behind an inbound listener). */
export function staticCluster(name: string, address: string, port: number): Obj {
  return {
    name,
    type: 'STATIC',
    connect_timeout: { seconds: 1 },
    lb_policy: 'ROUND_ROBIN',
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address, port_value: port } } } }] }],
    },
  };
}

const UINT32_MAX = 4294967295;
/** A `UInt32Value`; larger numbers (the CRD allows them) mean "no limit" and are capped. */
const u32 = (n: number): Obj => ({ value: Math.min(n, UINT32_MAX) });

function duration(ms: number): Obj {
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.round((ms - seconds * 1000) * 1e6);
  return nanos ? { seconds, nanos } : { seconds };
}
