/**
 * What happens to an accepted connection before any protocol runs (Envoy's listener filters and
 * filter chain matching), for HTTP listeners and TCP-only listeners alike:
 *
 *   destination (SO_ORIGINAL_DST with the `original_dst` filter in capture mode; else the
 *   listener's own address) → PROXY v2 header (the `proxy_protocol` filter, local mode only: its
 *   destination port replaces the listener's) → chains for that destination → detection, only
 *   when those chains differ by protocol (detect-protocol.ts) → the chain (filter-chain.ts) →
 *   the HTTP connection manager (HTTP/1 or h2c, by the preface) or a TCP proxy (forward-tcp.ts).
 *
 * A port whose chains do not depend on the protocol (an opaque port) is never read before the
 * upstream is connected, so a server-speaks-first protocol sees its banner at once. A silent client
 * on a detecting port is opaque TCP after the listener's detection timeout when the listener says
 * so (`continue_on_listener_filters_timeout`), else closed.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '@weft/api';
import { MESH_MTLS_TRANSPORT, type ConnectionDispatch, type FilterChain, type ListenerDirection, type ProxyConfig } from './config';
import { detectProtocol, readFirstBytes, sniffProtocol, type DetectedProtocol, type SniffedProtocol } from './detect-protocol';
import { chainsForDestination, needsDetection, selectChain } from './filter-chain';
import { forwardTcp } from './forward-tcp';
import { authorizeTcp, defaultDenials, type AuthzDenials } from './authz-enforce';
import type { Counter } from './metrics';
import type { RequestMetrics } from './metrics-requests';
import { parseClientHello } from './tls-client-hello';
import type { TlsContexts } from './tls-contexts';
import { DECRYPTED_DESTINATION, InboundTlsRefusedError, terminateTls } from './tls-terminate';
import type { OriginalDestination } from './original-dst';
import { parseProxyV2, type ProxyAddress } from './proxy-protocol';
import { snapshotOf } from './proxy-snapshot';
import { NoFilterChainError, ProxyHeaderError, type TcpProxyError } from './tcp-errors';
import type { UpstreamPool } from './upstream-pool';

/** Serves `socket` over HTTP (its first bytes put back): the listener's HTTP connection manager. */
export type ServeHttp = (socket: Socket, protocol: DetectedProtocol) => void;

export interface DispatchDeps {
  readonly log: Logger;
  readonly pool: UpstreamPool;
  readonly current: () => ProxyConfig;
  /** Capture mode: SO_ORIGINAL_DST. Its presence also means PROXY headers are never trusted. */
  readonly originalDestination?: (socket: Socket) => (Partial<OriginalDestination> & { readonly port: number }) | undefined;
  /** Where authorization denials are counted and logged; absent: a counter of this dispatcher's own. */
  readonly authzDenials?: AuthzDenials;
  /** Mesh mTLS: the workload certificate and trust bundle contexts (tls-contexts.ts). */
  readonly tls?: TlsContexts;
  /** `weft_inbound_tls_refusals_total{reason}`: every connection closed for want of mesh mTLS. */
  readonly tlsRefusals?: Counter<'reason'>;
  /** TCP connection and byte counters (metrics-requests.ts); absent: not recorded. */
  readonly requestMetrics?: RequestMetrics;
}

/** The part of a listener spec dispatch reads (HttpListener and TcpListener both have it). */
export interface DispatchedListener {
  readonly name: string;
  readonly direction?: ListenerDirection;
  readonly connections?: ConnectionDispatch;
}

const HTTP1_PROTOCOLS = ['http/1.1', 'http/1.0'];
const H2C_PROTOCOLS = ['h2c'];

/** What the reader learnt from the first bytes. */
interface Decision {
  readonly chain: FilterChain | undefined;
  readonly protocol: SniffedProtocol | undefined;
  /** ALPN offered in a TLS ClientHello (read only when a chain matches on it). */
  readonly alpn?: readonly string[];
  /** Bytes after any PROXY header. */
  readonly rest: Buffer;
  /** The destination port the chain was chosen for, and whether a PROXY header gave it. */
  readonly port: number;
  readonly viaHeader: boolean;
  /** The chains for that destination (to tell an mTLS-only destination's refusals). */
  readonly chains: readonly FilterChain[];
}

/**
 * One listener's dispatch. Reads `spec()` per connection, so an updated listener applies to the
 * next connection. `destroy()` cuts every upstream TCP connection it opened (the listener cuts the
 * client side).
 */
export class ConnectionDispatcher {
  private readonly upstreams = new Set<Socket>();
  private readonly log: Logger;
  private readonly denials: AuthzDenials;

  constructor(
    private readonly spec: () => DispatchedListener,
    private readonly deps: DispatchDeps,
  ) {
    this.log = deps.log.child({ module: 'listener-dispatch' });
    this.denials = deps.authzDenials ?? defaultDenials(this.log);
  }

  /**
   * Takes an accepted socket. `httpDetectMs` bounds detection on HTTP-only listeners (a silent
   * client is closed). Synchronous setup; the socket is owned from here on.
   */
  dispatch(socket: Socket, serveHttp: ServeHttp, httpDetectMs: number, outer?: { readonly destination: ProxyAddress; readonly redirected: ProxyAddress | undefined }): void {
    const decrypted = outer !== undefined;
    const spec = this.spec();
    const d = spec.connections;
    if (!d) return void detectProtocol(socket, httpDetectMs, (p) => serveHttp(socket, p));
    // A stream mesh mTLS decrypted (a `terminate-tls` chain) is dispatched again with this transport.
    const transport = decrypted ? MESH_MTLS_TRANSPORT : undefined;
    socket.on('error', () => undefined); // a reset during detection: readFirstBytes reports it

    let destination: ProxyAddress = { address: socket.localAddress ?? '', port: socket.localPort ?? 0 };
    let redirected: ProxyAddress | undefined;
    const od = d.originalDst ? this.deps.originalDestination : undefined;
    if (outer) {
      // The decrypted stream goes where its TLS connection went (no socket option to read on it).
      destination = outer.destination;
      redirected = outer.redirected;
    } else if (od) {
      try {
        const r = od(socket);
        if (r) redirected = { address: r.address ?? destination.address, port: r.port };
      } catch (err) {
        this.log.warn('could not read the original destination', { listener: spec.name, err: (err as Error).message });
      }
      if (redirected) destination = redirected;
    }
    // A client's PROXY header is never trusted where the kernel knows the destination (capture).
    const proxyProtocol = d.proxyProtocol && !this.deps.originalDestination;
    const context = { listener: spec.name, client: `${socket.remoteAddress}:${socket.remotePort}` };
    const refuse = (error: TcpProxyError, level: 'info' | 'warn' = 'info'): void => {
      this.log[level]('connection refused', { ...context, code: error.code, reason: error.message });
      socket.destroy();
    };
    const tcp = (chain: FilterChain & { filter: { kind: 'tcp' } }, head: Buffer, ended: boolean, port: number): void => {
      // Authorization (network RBAC, authz-enforce.ts) on the app port: a denied connection is closed.
      if (chain.filter.authz && !authorizeTcp(chain.filter.authz, this.denials, socket, port, spec.name)) return void socket.destroy();
      forward(chain, head, ended);
    };
    const forward = (chain: FilterChain & { filter: { kind: 'tcp' } }, head: Buffer, ended: boolean): void => forwardTcp({
      downstream: socket,
      head,
      ended,
      proxy: chain.filter.proxy,
      snap: snapshotOf(this.deps.current(), this.deps.pool),
      ...(redirected ? { originalDestination: redirected } : {}),
      log: this.log.child({ listener: spec.name, chain: chain.name }),
      upstreams: this.upstreams,
      ...(this.deps.pool.tls ? { tls: this.deps.pool.tls } : {}),
      ...(this.deps.requestMetrics ? { metrics: { m: this.deps.requestMetrics, direction: spec.direction ?? 'inbound' } } : {}),
    });
    const refuseTls = (error: InboundTlsRefusedError): void => {
      this.deps.tlsRefusals?.inc({ reason: error.reason });
      this.log.info('connection refused: mesh mTLS required', { ...context, code: error.code, reason: error.reason, detail: error.message });
      socket.destroy();
    };
    const go = (chain: FilterChain | undefined, protocol: SniffedProtocol | undefined, head: Buffer, ended: boolean, port: number, chains?: readonly FilterChain[]): void => {
      if (!chain && !decrypted && chains?.some(needsMtls)) {
        // Chains exist for this destination, but only for mesh mTLS (STRICT): plaintext, or TLS without the mesh ALPN.
        return refuseTls(new InboundTlsRefusedError(protocol === 'tls' ? 'tls-not-mesh' : 'plaintext', `destination port ${port} accepts mesh mTLS only (${protocol ?? 'no bytes read'})`));
      }
      if (!chain) return refuse(new NoFilterChainError(`no filter chain for destination port ${port}${protocol ? ` (${protocol})` : ''}`));
      if (chain.filter.kind === 'tcp') return tcp(chain as FilterChain & { filter: { kind: 'tcp' } }, head, ended, port);
      if (chain.filter.kind === 'terminate-tls') {
        if (ended || decrypted) return void socket.destroy();
        return terminateTls(socket, head, chain.filter.tls, this.deps.tls, (secure) => {
          if (redirected) (secure as unknown as Record<symbol, ProxyAddress>)[DECRYPTED_DESTINATION] = redirected;
          this.dispatch(secure, serveHttp, httpDetectMs, { destination, redirected });
        }, refuseTls);
      }
      if (ended) return void socket.destroy();
      if (protocol === undefined) {
        // The HTTP chain without detection (no chain here depends on the protocol): HTTP/1 or h2c.
        socket.unshift(head);
        return void detectProtocol(socket, httpDetectMs, (p) => serveHttp(socket, p));
      }
      socket.unshift(head);
      serveHttp(socket, protocol === 'http2' ? 'http2' : 'http1');
    };

    if (decrypted && (socket as Partial<TLSSocket>).alpnProtocol === 'h2') {
      // ALPN already said HTTP/2 (a peer's h2 session; it sends no PROXY header): serve it without
      // reading, since Node's HTTP/2 server cannot take bytes put back on a TLS socket.
      const chains = chainsForDestination(d, destination.port, destination.address);
      const chain = selectChain(chains, this.facts(destination, 'http2', transport), d);
      if (chain?.filter.kind !== 'http') return refuse(new NoFilterChainError(`no HTTP chain for an h2 mTLS connection to port ${destination.port}`));
      return serveHttp(socket, 'http2');
    }

    // Nothing to read first: the destination alone decides (an opaque port), so do not wait.
    if (!proxyProtocol) {
      const chains = chainsForDestination(d, destination.port, destination.address);
      if (!needsDetection(chains, transport)) return go(selectChain(chains, this.facts(destination, undefined, transport), d), undefined, Buffer.alloc(0), false, destination.port);
      if (!decrypted && chains.length && chains.every((c) => c.match.transportProtocol === MESH_MTLS_TRANSPORT)) {
        return go(undefined, undefined, Buffer.alloc(0), false, destination.port, chains); // STRICT: nothing to read
      }
    }

    // The PROXY header (when trusted) replaces the destination port; its bytes are not forwarded.
    const unwrap = (data: Buffer): { dest: ProxyAddress; rest: Buffer; viaHeader: boolean } | TcpProxyError | undefined => {
      if (!proxyProtocol) return { dest: destination, rest: data, viaHeader: false };
      const h = parseProxyV2(data);
      if (h.kind === 'incomplete') return undefined;
      if (h.kind === 'invalid') return new ProxyHeaderError(h.reason);
      if (h.kind === 'none') return { dest: destination, rest: data, viaHeader: false };
      const dest = h.command === 'PROXY' ? { address: destination.address, port: h.destination.port } : destination;
      return { dest, rest: data.subarray(h.length), viaHeader: h.command === 'PROXY' };
    };
    const decide = (data: Buffer): Decision | TcpProxyError | undefined => {
      const u = unwrap(data);
      if (!u || u instanceof Error) return u;
      const chains = chainsForDestination(d, u.dest.port, u.dest.address);
      let protocol: SniffedProtocol | undefined;
      let alpn: readonly string[] | undefined;
      if (needsDetection(chains, transport)) {
        protocol = sniffProtocol(u.rest);
        if (protocol === undefined) return undefined;
        if (protocol === 'tls' && chains.some((c) => c.match.transportProtocol === 'tls' && c.match.applicationProtocols?.length)) {
          // tls_inspector: the ALPN the ClientHello offers tells mesh mTLS from an app's own TLS.
          const hello = parseClientHello(u.rest);
          if (!hello) return undefined;
          alpn = hello.alpn;
        }
      }
      const chain = selectChain(chains, this.facts(u.dest, protocol, transport, alpn), d);
      // HTTP without detection still needs a first byte for the preface check: wait for it there.
      return { chain, protocol, ...(alpn ? { alpn } : {}), rest: u.rest, port: u.dest.port, viaHeader: u.viaHeader, chains };
    };
    const decided = (v: Decision, ended: boolean): void => {
      if (!v.chain && !decrypted && v.chains.some(needsMtls)) return go(undefined, v.protocol, v.rest, ended, v.port, v.chains);
      if (!v.chain && v.viaHeader) {
        // Never an open relay: a PROXY header reaches only the ports this listener has chains for.
        return refuse(new ProxyHeaderError(`PROXY header names port ${v.port}, which is not an app port of this pod`), 'warn');
      }
      go(v.chain, v.protocol, v.rest, ended, v.port);
    };
    readFirstBytes(socket, d.detectTimeoutMs || httpDetectMs, decide, (r) => {
      if (r.kind === 'error') return;
      if (r.kind === 'decided') return r.value instanceof Error ? refuse(r.value, 'warn') : decided(r.value, false);
      // Timed out, or the client ended its side, before a decision.
      if (r.kind === 'timeout' && !d.fallbackOnTimeout) return void socket.destroy();
      const u = unwrap(r.data);
      if (!u) return refuse(new ProxyHeaderError('incomplete PROXY header'), 'warn');
      if (u instanceof Error) return refuse(u, 'warn');
      // A silent (or finished) client: no protocol to match, so only a TCP chain can take it.
      const chains = chainsForDestination(d, u.dest.port, u.dest.address);
      const chain = selectChain(chains, this.facts(u.dest, 'opaque', transport), d);
      if (chain && chain.filter.kind !== 'tcp') return void socket.destroy();
      this.log.debug('detection gave up; opaque TCP', { ...context, reason: r.kind, bytes: r.data.length });
      decided({ chain, protocol: 'opaque', rest: u.rest, port: u.dest.port, viaHeader: u.viaHeader, chains }, r.kind === 'ended');
    });
  }

  /** Cuts every upstream connection opened by this listener's TCP proxies. Idempotent. */
  destroy(): void {
    for (const s of this.upstreams) s.destroy();
    this.upstreams.clear();
  }

  private facts(dest: ProxyAddress, protocol: SniffedProtocol | undefined, transport?: string, alpn?: readonly string[]): { destinationPort: number; destinationAddress: string; transportProtocol?: string; applicationProtocols?: readonly string[] } {
    return {
      destinationPort: dest.port,
      destinationAddress: dest.address,
      ...(transport ? { transportProtocol: transport } : {}),
      ...(protocol === undefined ? {} : {
        transportProtocol: transport ?? (protocol === 'tls' ? 'tls' : 'raw_buffer'),
        applicationProtocols: protocol === 'http1' ? HTTP1_PROTOCOLS : protocol === 'http2' ? H2C_PROTOCOLS : protocol === 'tls' ? (alpn ?? []) : [],
      }),
    };
  }
}

/** A chain only mesh mTLS reaches: it terminates it, or it serves what it decrypted. */
function needsMtls(c: FilterChain): boolean {
  return c.filter.kind === 'terminate-tls' || c.match.transportProtocol === MESH_MTLS_TRANSPORT;
}
