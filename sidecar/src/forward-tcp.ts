/**
 * Envoy's TCP proxy for one accepted connection. The stages, in order:
 *
 *   cluster (the tcp_proxy's, or a weighted pick) → pool limits (the cluster's `max_connections`;
 *   full: refused, Envoy's UO) → endpoint (the cluster's balancer, or the original destination for
 *   an ORIGINAL_DST cluster) → connect (bounded by the cluster's connect timeout; the pick learns
 *   the outcome, so a refused endpoint counts for outlier detection) → PROXY v2 header when the
 *   endpoint is a peer sidecar (it carries a `targetPort`) → the bytes detection already read →
 *   both directions piped (backpressure), FIN forwarded as FIN (half-close), a reset as a reset,
 *   an idle timeout closing both.
 *
 * Failures are `TcpProxyError`s (tcp-errors.ts), logged; the client's connection is then closed.
 */
import type { Socket } from 'node:net';
import type { TlsContexts } from './tls-contexts';
import { connectUpstream } from './tls-originate';
import type { Logger } from '@weft/api';
import type { Endpoint, TcpProxy } from './config';
import type { ProxySnapshot } from './proxy-snapshot';
import { encodeProxyV2, type ProxyAddress } from './proxy-protocol';
import { pickWeightedCluster } from './route-weighted';
import { TcpClusterNotFoundError, TcpConnectError, TcpNoHealthyUpstreamError, TcpOverflowError, type TcpProxyError } from './tcp-errors';
import { endpointKey } from './upstream-pool';
import { tcpOpened, type RequestSeries, type TcpMetricsHook } from './metrics-requests';

/** Envoy's `tcp_proxy.idle_timeout` when unset. */
export const DEFAULT_TCP_IDLE_TIMEOUT_MS = 3_600_000;

export interface TcpForward {
  /** The client's socket, paused; from now on this forward owns it. */
  readonly downstream: Socket;
  /** Bytes already read from the client (detection, after any PROXY header), sent upstream first. */
  readonly head: Buffer;
  /** The client had already ended its side (FIN) during detection. */
  readonly ended: boolean;
  readonly proxy: TcpProxy;
  readonly snap: ProxySnapshot;
  /** Where the connection was going (capture mode): the endpoint of an ORIGINAL_DST cluster. */
  readonly originalDestination?: ProxyAddress;
  readonly log: Logger;
  /** Mesh mTLS contexts, for endpoints the cluster gives `tls` (auto mTLS). */
  readonly tls?: TlsContexts;
  /** Connections opened upstream, so an owner can cut them (`destroy()`); removed on close. */
  readonly upstreams?: Set<Socket>;
  /** Connection and byte counters (metrics-requests.ts), with the listener's direction. */
  readonly metrics?: TcpMetricsHook;
}

/** Proxies `f.downstream` to an upstream chosen by `f.proxy`. Synchronous setup; never throws. */
export function forwardTcp(f: TcpForward): void {
  const { downstream, proxy, snap, log } = f;
  const started = performance.now();
  const logged: Record<string, unknown> = { client: `${downstream.remoteAddress}:${downstream.remotePort}`, proxy: proxy.statPrefix };
  downstream.on('error', () => undefined); // reported through 'close' below
  const refuse = (error: TcpProxyError): void => {
    log.info('tcp connection refused', { ...logged, code: error.code, reason: error.message });
    downstream.destroy();
  };

  const name = proxy.target.kind === 'cluster' ? proxy.target.cluster : pickWeightedCluster(proxy.target);
  const cluster = name === undefined ? undefined : snap.clusters.get(name);
  logged.cluster = name;
  if (!cluster) return refuse(new TcpClusterNotFoundError(`cluster ${name ?? '(none)'} not found`));

  // Pool limits: a TCP connection holds a connection slot for its life. It never queues (the
  // pending queue is for requests): a full cluster refuses at once, counted as an overflow.
  let release: (() => void) | undefined;
  const withdraw = cluster.limits.enter((r) => (release = r));
  if (!release) {
    withdraw?.();
    cluster.limits.overflows++;
    return refuse(new TcpOverflowError(`cluster ${cluster.cluster.name} is at max_connections`));
  }

  let endpoint: Pick<Endpoint, 'address' | 'port' | 'targetPort' | 'tls'>;
  let pick: ReturnType<typeof cluster.balancer.pick>;
  if (cluster.cluster.discovery === 'ORIGINAL_DST') {
    if (!f.originalDestination) {
      release();
      return refuse(new TcpNoHealthyUpstreamError('no original destination (not a redirected connection)'));
    }
    endpoint = f.originalDestination;
  } else {
    pick = cluster.balancer.pick();
    if (!pick) {
      release();
      return refuse(new TcpNoHealthyUpstreamError(`cluster ${cluster.cluster.name} has no healthy endpoint`));
    }
    endpoint = pick.endpoint;
  }
  logged.upstream = endpointKey(endpoint);

  // Mesh mTLS where the cluster resolved it for this endpoint (tls-originate.ts); the PROXY header
  // for a peer sidecar then travels inside TLS.
  const { socket: upstream, secure } = connectUpstream(endpoint, f.tls, 'tcp', { allowHalfOpen: true });
  downstream.allowHalfOpen = true;
  f.upstreams?.add(upstream);
  let connected = false;
  let abandoned = false;
  const connectTimer = setTimeout(() => upstream.destroy(new TcpConnectError('connect timeout')), cluster.cluster.connectTimeoutMs || 1000);
  let closedSides = 0;
  let series: RequestSeries | undefined;
  const closed = (): void => {
    if (++closedSides < 2) return;
    release?.();
    if (series) f.metrics!.m.tcpClosed(series, f.head.length + downstream.bytesRead, downstream.bytesWritten);
    log.debug('tcp connection closed', {
      ...logged, ms: Math.round(performance.now() - started),
      bytesFromClient: f.head.length + downstream.bytesRead, bytesToClient: downstream.bytesWritten,
    });
  };

  upstream.once(secure ? 'secureConnect' : 'connect', () => {
    connected = true;
    clearTimeout(connectTimer);
    pick?.done({ kind: 'response', status: 200 });
    if (f.metrics) series = tcpOpened(f.metrics, downstream, cluster.cluster, pick?.endpoint);
    if (endpoint.targetPort !== undefined) {
      // A peer sidecar's inbound listener: tell it which app port (local mode; docs/protocols.md).
      const source = { address: downstream.remoteAddress ?? '0.0.0.0', port: downstream.remotePort ?? 0 };
      upstream.write(encodeProxyV2(source, { address: endpoint.address, port: endpoint.targetPort }));
    }
    if (f.head.length) upstream.write(f.head);
    if (f.ended) upstream.end();
    else downstream.pipe(upstream);
    upstream.pipe(downstream);
    downstream.resume();
    const idle = proxy.idleTimeoutMs;
    if (idle > 0) {
      // Bytes either way are read or written on the client's socket, so its timer sees them all.
      downstream.setTimeout(idle, () => {
        log.debug('tcp connection idle', { ...logged, idleTimeoutMs: idle });
        downstream.destroy();
        upstream.destroy();
      });
    }
  });

  upstream.once('close', (hadError) => {
    clearTimeout(connectTimer);
    f.upstreams?.delete(upstream);
    if (!connected) {
      if (!abandoned) {
        pick?.done({ kind: 'connect-failure' });
        log.info('tcp connection refused', { ...logged, code: 'UPSTREAM_CONNECT_FAILED', reason: upstreamError?.message ?? 'closed before connecting' });
      }
      downstream.destroy();
    } else if (hadError) {
      // A reset upstream is a reset downstream.
      downstream.resetAndDestroy();
    } else if (!downstream.writableEnded) {
      downstream.end();
    }
    closed();
  });
  let upstreamError: Error | undefined;
  upstream.on('error', (err) => (upstreamError = err));

  downstream.once('close', (hadError) => {
    if (hadError) {
      if (!upstream.destroyed) upstream.resetAndDestroy();
    } else if (!connected) {
      // The client left first: says nothing about the endpoint.
      abandoned = true;
      pick?.done({ kind: 'cancelled' });
      upstream.destroy();
    } else if (!upstream.writableEnded) {
      upstream.end();
    }
    closed();
  });
}
