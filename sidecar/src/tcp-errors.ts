/**
 * Why a TCP connection was refused or cut (STYLE.md, "Errors"): one class per failure, each with a
 * stable `code`. TCP has no way to tell the client why, so these are only logged (with the client
 * and listener as context) and the connection is closed, as Envoy's TCP proxy does; the codes
 * mirror Envoy's response flags where one exists.
 */
import { SidecarError } from './proxy-errors';

export abstract class TcpProxyError extends SidecarError {}

/** No filter chain matched and the listener has no default chain (Envoy's NR). */
export class NoFilterChainError extends TcpProxyError {
  readonly code = 'NO_FILTER_CHAIN';
}

/** The tcp_proxy names a cluster this config does not have (Envoy's NC). */
export class TcpClusterNotFoundError extends TcpProxyError {
  readonly code = 'CLUSTER_NOT_FOUND';
}

/** The cluster has no healthy endpoint, or an ORIGINAL_DST cluster has no original destination (Envoy's UH). */
export class TcpNoHealthyUpstreamError extends TcpProxyError {
  readonly code = 'NO_HEALTHY_UPSTREAM';
}

/** The cluster's `max_connections` are all in use (Envoy's UO). */
export class TcpOverflowError extends TcpProxyError {
  readonly code = 'UPSTREAM_OVERFLOW';
}

/** The upstream refused, was unreachable, or did not connect within the connect timeout (Envoy's UF). */
export class TcpConnectError extends TcpProxyError {
  readonly code = 'UPSTREAM_CONNECT_FAILED';
}

/** A PROXY header that could not be read, or that names a port no filter chain serves. */
export class ProxyHeaderError extends TcpProxyError {
  readonly code = 'PROXY_HEADER_REFUSED';
}
