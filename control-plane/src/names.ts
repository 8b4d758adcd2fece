/** Resource names, Istio-style, so that operators who know Istio can read our config dumps. */

/** `outbound|<port>|<subset>|<host>`; subset empty for the whole Service. */
export function outboundClusterName(port: number, subset: string, host: string): string {
  return `outbound|${port}|${subset}|${host}`;
}

/** `inbound|<targetPort>||` */
export function inboundClusterName(targetPort: number): string {
  return `inbound|${targetPort}||`;
}

export const OUTBOUND_LISTENER = 'virtualOutbound';
export const INBOUND_LISTENER = 'virtualInbound';
export const OUTBOUND_ROUTES = 'outbound';
export const INBOUND_ROUTES = 'inbound';

/** Sidecar ports (SPEC.md, "Ports"). */
export const OUTBOUND_PORT = 15001;
export const INBOUND_PORT = 15006;

/** Local-mode header carrying a peer's app port to its inbound listener. */
export const TARGET_PORT_HEADER = 'x-weft-target-port';

/** Endpoint metadata namespace carrying Weft's own endpoint facts. */
export const METADATA_NS = 'weft.dev';

/** Capture mode: where outbound TCP to no known Service goes (Istio's name; an ORIGINAL_DST cluster). */
export const PASSTHROUGH_CLUSTER = 'PassthroughCluster';

/**
 * Local mode's per-upstream listener for a Service port: `0.0.0.0_<port>` (Istio's name for a
 * listener that serves a port whatever the destination address), bound on the pod's IP.
 */
export function localPortListenerName(port: number): string {
  return `0.0.0.0_${port}`;
}
