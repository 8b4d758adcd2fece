/**
 * Typed, immutable internal values for the Kubernetes objects Weft reads. Raw YAML/JSON becomes
 * these through `kube-parse.ts`; translation never touches a raw object.
 */

import type { AuthorizationPolicy } from './kube-types-authz';

export interface ObjectMeta {
  readonly name: string;
  readonly namespace: string; // defaulted to "default" where the manifest omits it
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  /** RFC 3339; in local mode, absent ones are ordered by file and document position. */
  readonly creationTimestamp?: string;
  readonly uid?: string;
  readonly generation?: number;
}

export interface ServicePort {
  readonly name?: string;
  readonly port: number;
  /** A number, or the name of a container port. Defaults to `port`. */
  readonly targetPort: number | string;
  readonly protocol: 'TCP' | 'UDP' | 'SCTP';
  readonly appProtocol?: string;
}

export interface Service {
  readonly kind: 'Service';
  readonly meta: ObjectMeta;
  /** Absent: a Service without selector (its EndpointSlices are managed by someone else). */
  readonly selector?: Readonly<Record<string, string>>;
  readonly ports: readonly ServicePort[];
  readonly clusterIP?: string;
}

export interface ContainerPort {
  readonly name?: string;
  readonly containerPort: number;
  readonly protocol: 'TCP' | 'UDP' | 'SCTP';
}

export interface Pod {
  readonly kind: 'Pod';
  readonly meta: ObjectMeta;
  readonly serviceAccount: string; // "default" when omitted
  readonly podIP?: string;
  /** status.conditions Ready; in local mode a pod with a podIP and no conditions is ready. */
  readonly ready: boolean;
  readonly containerPorts: readonly ContainerPort[];
}

export interface EndpointSlicePort {
  readonly name?: string;
  readonly port: number;
  readonly protocol: 'TCP' | 'UDP' | 'SCTP';
  readonly appProtocol?: string;
}

export interface EndpointSliceEndpoint {
  readonly addresses: readonly string[];
  readonly ready: boolean;
  readonly targetRef?: { readonly kind: string; readonly name: string; readonly namespace: string };
}

export interface EndpointSlice {
  readonly kind: 'EndpointSlice';
  readonly meta: ObjectMeta;
  /** From the `kubernetes.io/service-name` label. */
  readonly serviceName: string;
  readonly addressType: 'IPv4' | 'IPv6' | 'FQDN';
  readonly ports: readonly EndpointSlicePort[];
  readonly endpoints: readonly EndpointSliceEndpoint[];
}

export type StringMatch =
  | { readonly kind: 'exact'; readonly value: string }
  | { readonly kind: 'prefix'; readonly value: string }
  | { readonly kind: 'regex'; readonly value: string };

export type HeaderMatch =
  | { readonly name: string; readonly kind: 'exact' | 'prefix' | 'regex'; readonly value: string }
  | { readonly name: string; readonly kind: 'present' };

export interface RouteMatchSpec {
  readonly path?: StringMatch;
  readonly method?: string;
  readonly headers: readonly HeaderMatch[];
}

export type Backend =
  | { readonly kind: 'subset'; readonly subset: string; readonly weight: number }
  | { readonly kind: 'service'; readonly service: string; readonly port?: number; readonly weight: number };

export interface RetrySpec {
  readonly attempts: number;
  readonly perTryTimeoutMs?: number;
  readonly retryOn: readonly string[];
  readonly retriableStatusCodes: readonly number[];
  readonly backoff?: { readonly baseIntervalMs: number; readonly maxIntervalMs: number };
  /** Weft: retry POST, PATCH, ... even after the upstream may have read them (default false). */
  readonly retryNonIdempotent?: boolean;
  /** Weft: the request body kept for replay; a larger body is not retried (sidecar default 64 KiB). */
  readonly bufferLimitBytes?: number;
}

export interface RetryBudgetSpec {
  readonly percent: number;
  readonly minRetriesPerSecond: number;
}

export interface RouteSpec {
  readonly name: string;
  /** Empty: matches every request. Any entry may match (OR); fields in one entry AND. */
  readonly match: readonly RouteMatchSpec[];
  readonly backends: readonly Backend[];
  readonly timeoutMs?: number;
  readonly retries?: RetrySpec;
  /** Fault injection: delay, then abort, each for a percentage of requests. */
  readonly fault?: FaultSpec;
  /** A fire-and-forget copy of a percentage of requests to another Service. */
  readonly mirror?: MirrorSpec;
}

/** `routes[].fault`: at least one of `delay`, `abort`; percents 0–100. */
export interface FaultSpec {
  readonly delay?: { readonly percent: number; readonly fixedDelayMs: number };
  readonly abort?: { readonly percent: number; readonly httpStatus: number };
}

/** `routes[].mirror`: `percent` defaults to 100 (Istio's `mirrorPercentage`). */
export interface MirrorSpec {
  readonly service: string;
  readonly port?: number;
  readonly percent: number;
}

export interface SubsetSpec {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** `spec.connectionPool`; an omitted or 0 field keeps Envoy's default (1024, or unlimited requests per connection). */
export interface ConnectionPoolSpec {
  readonly maxConnections?: number;
  readonly maxPendingRequests?: number;
  readonly maxRequestsPerConnection?: number;
}

/** `spec.outlierDetection`; omitted fields take Envoy's defaults (5, 10 s, 30 s, 10%). */
export interface OutlierDetectionSpec {
  readonly consecutive5xxErrors?: number;
  readonly intervalMs?: number;
  readonly baseEjectionTimeMs?: number;
  readonly maxEjectionPercent?: number;
}

export interface TrafficPolicy {
  readonly kind: 'TrafficPolicy';
  readonly meta: ObjectMeta;
  readonly targetRef: { readonly kind: 'Service'; readonly name: string };
  readonly subsets: readonly SubsetSpec[];
  readonly routes: readonly RouteSpec[];
  readonly loadBalancer?: { readonly algorithm: 'EWMA' | 'RoundRobin' | 'LeastRequest' | 'Random' };
  /** Absent: Envoy's circuit-breaker defaults; see docs/configuration.md, "Connection pool". */
  readonly connectionPool?: ConnectionPoolSpec;
  /** Absent: no outlier detection. */
  readonly outlierDetection?: OutlierDetectionSpec;
  /** Absent: the default budget (20% + 10/s, FIELD-NOTES 8). */
  readonly retryBudget?: RetryBudgetSpec;
  /** Fields accepted by the schema that this version does not enforce yet (dotted paths). */
  readonly notYetSupported: readonly string[];
  /** Raw spec fields kept for later issues (none today). */
  readonly extra: Readonly<Record<string, unknown>>;
}

/** `PeerAuthentication.spec.mtls.mode`; `UNSET` (or an omitted mode) inherits from the level above. */
export type MtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE' | 'UNSET';

/** `weft.dev/v1alpha1 PeerAuthentication` (SPEC.md "CRDs"; docs/configuration.md "PeerAuthentication"). */
export interface PeerAuthentication {
  readonly kind: 'PeerAuthentication';
  readonly meta: ObjectMeta;
  /** `selector.matchLabels`; absent: the whole namespace (mesh-wide in the root namespace). */
  readonly selector?: Readonly<Record<string, string>>;
  readonly mode: MtlsMode;
  /** `portLevelMtls`, by the pod's (container) port; only with a selector. */
  readonly portLevel: ReadonlyMap<number, MtlsMode>;
}

export type KubeObject = Service | Pod | EndpointSlice | TrafficPolicy | AuthorizationPolicy | PeerAuthentication;
export type KubeKind = KubeObject['kind'];

export function objectKey(o: { kind: string; meta: { namespace: string; name: string } }): string {
  return `${o.kind}/${o.meta.namespace}/${o.meta.name}`;
}

/** The fully qualified host of a Service: `<name>.<namespace>.svc.cluster.local`. */
export function serviceHost(namespace: string, name: string, clusterDomain = 'cluster.local'): string {
  return `${name}.${namespace}.svc.${clusterDomain}`;
}
