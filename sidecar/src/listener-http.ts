/**
 * One HTTP/1.1 proxy listener. Each request runs the stages in order, each a small function:
 *
 *   strict (refuse smuggling vectors, limits; http-strict.ts) → target (normalize path and Host;
 *     path-normalize.ts) → snapshot (config read once) → route (vhost + route; proxy-stages.ts)
 *     → authz (RBAC on the normalized target and the peer's identity; authz-enforce.ts) → fault (delay, then abort; fault-inject.ts) → backend (cluster, weighted; proxy-stages.ts)
 *     → pool limits (admit, queue or overflow; pool-limits.ts) → endpoint (cluster balancer; the
 *     pick is completed with the outcome) → connect (forward through the pool's lean HTTP/1.1
 *     client, forward-http.ts over upstream-http1.ts; copies to mirror clusters, the mirror stage
 *     in proxy-stages.ts)
 *
 * HTTP/2 (h2c) and gRPC streams on the same port, after protocol detection, run the same route,
 * backend and endpoint stages in listener-h2.ts.
 *
 * An HTTP/1.1 `Upgrade` request (WebSocket, ...) runs the same stages on a response bound to the
 * handed-over socket, and connects through `upgradeStage` (forward-upgrade.ts) instead: no
 * retries, no mirror.
 *
 * What llhttp refuses before a request exists (and the header timeouts) is answered by the server
 * itself (`ManagedHttpServer`, server-lifecycle.ts); docs/http-safety.md lists every case.
 *
 * Every stage returns a value or an `HttpProxyError`; `fail()` is the one place an error becomes
 * a response. Only immutable snapshots are read on this path; compiling happens once per config.
 */
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '@weft/api';
import { TARGET_PORT_HEADER, type HttpListener, type MirrorPolicy, type ProxyConfig, type Route } from './config';
import { forwardHttp, type ForwardEndpoint, type ForwardTarget } from './forward-http';
import { upstreamHead } from './headers-http';
import { Http1Response, socketSink, type DownstreamRequest, type DownstreamResponse, type Http1Request } from './http1-message';
import type { HttpLimits } from './http-limits';
import { checkRequest, recordRejection, respondAndClose, unmetExpectation } from './http-strict';
import { requestTarget, type RequestTarget } from './path-normalize';
import { DownstreamProtocolError, ExpectationFailedError, HttpProxyError, MalformedRequestError, UpstreamOverflowError } from './proxy-errors';
import { applyFault, decideFault, isNoFault } from './fault-inject';
import { upgradeStage } from './forward-upgrade';
import { SHARED_MIRRORS, type RequestMirrors } from './mirror-http';
import { DEFAULT_BUFFER_LIMIT_BYTES } from './retry-policy';
import { compiledRouteTable, snapshotOf, type ClusterSnapshot, type ProxySnapshot, type UpstreamPick } from './proxy-snapshot';
import { backendStage, callResult, endpointStage, mirrorStage, RETRIED_ATTEMPT, routeStage } from './proxy-stages';
import { ManagedHttpServer, type ConnectionDispatch } from './server-lifecycle';
import { authorizeHttp, defaultDenials, inboundPort, routeClusterPort, type AuthzDenials } from './authz-enforce';
import { h2StreamHandler } from './listener-h2';
import type { RetryBudgets } from './retry-budget';
import { endpointKey, type UpstreamPool } from './upstream-pool';
import { RequestRecord, type RequestMetrics } from './metrics-requests';
import { prepareTracing, traceHttp1, traceOf } from './trace-span';

// The stages shared with listener-h2.ts live in proxy-stages.ts; re-exported for existing importers.
export { backendStage, endpointStage, routeStage } from './proxy-stages';

export interface ProxyListenerDeps {
  readonly log: Logger;
  /** Shared by all listeners; the listener never closes it. */
  readonly pool: UpstreamPool;
  /** Header limits and timeouts; unset fields take `DEFAULT_HTTP_LIMITS` (docs/http-safety.md). */
  readonly limits?: Partial<HttpLimits>;
  /**
   * Capture mode: where a redirected connection was going (SO_ORIGINAL_DST). An inbound request
   * then names its app port by that, never by a header a client could set.
   */
  readonly originalDestination?: (socket: Socket) => { readonly port: number } | undefined;
  /** Retry budgets and counters; default the process-wide `SHARED_RETRY_BUDGETS` (retry-budget.ts). */
  readonly retryBudgets?: RetryBudgets;
  /** Mirror copies in flight and their counters; default the process-wide `SHARED_MIRRORS`. */
  readonly mirrors?: RequestMirrors;
  /** Where authorization denials are counted and logged (authz-enforce.ts); absent: a counter of the listener's own. */
  readonly authzDenials?: AuthzDenials;
  /** Filter chains and TCP proxies before HTTP (listener-dispatch.ts); absent: every connection is HTTP. */
  readonly connections?: (spec: () => HttpListener) => ConnectionDispatch;
  /** Request and TCP metrics (metrics-requests.ts); absent: not recorded. */
  readonly requestMetrics?: RequestMetrics;
}

/** The socket an `Upgrade` request handed over, and the bytes the client sent after its head. */
interface UpgradeContext {
  readonly socket: Socket;
  readonly head: Buffer;
}

/** Per connection, the app port it was redirected from (one getsockopt per connection). */
const redirectedPort = new WeakMap<Socket, string | null>();

/**
 * Serves one `HttpListener`. Reads `current()` once per request, so a config swap applies to the
 * next request and never disturbs one in flight. Not reusable after `close()`/`destroy()`.
 */
export class HttpProxyListener {
  private served: HttpListener;
  private readonly server: ManagedHttpServer;
  private readonly log: Logger;
  private readonly pool: UpstreamPool;
  private readonly originalDestination: ProxyListenerDeps['originalDestination'];
  private readonly retryBudgets: RetryBudgets | undefined;
  private readonly mirrors: RequestMirrors;
  private readonly denials: AuthzDenials;
  private readonly metrics: RequestMetrics | undefined;
  private lastConfig: ProxyConfig | undefined;
  private lastSnap: ProxySnapshot | undefined;

  constructor(
    spec: HttpListener,
    private readonly current: () => ProxyConfig,
    deps: ProxyListenerDeps,
  ) {
    this.served = spec;
    prepareTracing(spec); // the SDK loads with the config, not on the first traced request
    this.log = deps.log.child({ module: 'listener-http', listener: spec.name });
    this.pool = deps.pool;
    this.originalDestination = deps.originalDestination;
    this.retryBudgets = deps.retryBudgets;
    this.mirrors = deps.mirrors ?? SHARED_MIRRORS;
    this.denials = deps.authzDenials ?? defaultDenials(this.log);
    this.metrics = deps.requestMetrics;
    this.server = new ManagedHttpServer(`listener ${spec.name}`, (req, res) => this.handle(req, res), this.log, {
      limits: deps.limits ?? {},
      // HTTP/1.1 through the lean server (server-http1.ts), behind protocol detection.
      http1: {
        onRequest: (req, res) => this.handle(req, res),
        onUpgrade: (req, socket, head) => this.handleUpgrade(req, socket, head),
      },
      // h2c and gRPC (listener-h2.ts), behind protocol detection.
      onHttp2Stream: h2StreamHandler({
        spec: () => this.served,
        current,
        pool: deps.pool,
        log: this.log,
        originalDestination: deps.originalDestination,
        retryBudgets: deps.retryBudgets,
        mirrors: this.mirrors,
        authzDenials: this.denials,
        requestMetrics: deps.requestMetrics,
      }),
      ...(deps.connections ? { dispatch: deps.connections(() => this.served) } : {}),
    });
  }

  /** The spec being served (the last one given to the constructor or `update`). */
  get spec(): HttpListener {
    return this.served;
  }

  /**
   * Binds `spec.address:spec.port`. Resolves once listening; rejects with a `ListenError` (code
   * `LISTEN_FAILED`, message naming the listener, address and reason) if the port is taken.
   */
  async listen(): Promise<void> {
    const spec = this.served;
    const bound = await this.server.listen(spec.address, spec.port);
    this.log.info('listener STARTING -> LISTENING', { address: bound.address, port: bound.port, direction: spec.direction });
  }

  /** The bound address (useful with port 0), or `undefined` when not listening. */
  address(): AddressInfo | undefined {
    return this.server.address();
  }

  /**
   * Swaps in a new spec (route source, direction) for the next request. Synchronous. The address
   * and port cannot change in place: throws if they differ (`ListenerManager` rebinds instead).
   */
  update(spec: HttpListener): void {
    const old = this.served;
    if (spec.address !== old.address || spec.port !== old.port) {
      throw new Error(`listener ${spec.name}: ${old.address}:${old.port} -> ${spec.address}:${spec.port} needs a rebind, not update()`);
    }
    // Compile an inline table now rather than on the first request.
    if (spec.routes.kind === 'inline') compiledRouteTable(spec.routes.table);
    prepareTracing(spec);
    this.served = spec;
  }

  /** Still accepting; HTTP/1 responses close their connections (callers reconnect). */
  softDrain(): void {
    this.server.softDrain();
  }

  /** `performance.now()` of the last accepted connection (0: none). */
  get lastAcceptAt(): number {
    return this.server.lastAcceptAt;
  }

  /** Stops accepting now; resolves when in-flight requests have finished. Idempotent. */
  close(): Promise<void> {
    if (!this.server.isClosing) this.log.info('listener LISTENING -> DRAINING');
    return this.server.close();
  }

  /** Aborts every connection now. Idempotent. */
  destroy(): void {
    this.server.destroy();
  }

  /** `snapshotOf(config)`, remembered for the config seen last (the same one for every request between swaps). */
  private snapshot(config: ProxyConfig): ProxySnapshot {
    if (config !== this.lastConfig || !this.lastSnap) {
      this.lastSnap = snapshotOf(config, this.pool);
      this.lastConfig = config;
    }
    return this.lastSnap;
  }

  /** Capture mode: the app port is the redirected connection's original port. */
  private takeTargetPort(req: DownstreamRequest): void {
    let port = redirectedPort.get(req.socket);
    if (port === undefined) {
      const d = this.originalDestination!(req.socket);
      redirectedPort.set(req.socket, (port = d ? String(d.port) : null));
    }
    if (port === null) delete req.headers[TARGET_PORT_HEADER];
    else req.headers[TARGET_PORT_HEADER] = port;
  }

  /** The end of a request's life at debug level: one line with what each stage decided. */
  private debugFinish(logged: Record<string, unknown>, started: number): Finish {
    return (status, error) => this.log.debug('request', { ...logged, status, code: error?.code, ms: Math.round(performance.now() - started) });
  }

  /**
   * An `Upgrade` request: the HTTP server handed the socket over. A response bound to it serves
   * refusals and non-101 answers (then the connection closes); the stages are the same.
   */
  private handleUpgrade(req: Http1Request, socket: Socket, head: Buffer): void {
    socket.on('error', () => undefined); // the server's handler left with the socket
    // Its last response: the socket ends after it (or becomes the tunnel, never written by `res`).
    const res: Http1Response = new Http1Response(req, socketSink(socket, () => res), false);
    // The tunnel starts right after the request head: there is no body to frame.
    const length = req.headers['content-length'];
    if (req.headers['transfer-encoding'] !== undefined || (length !== undefined && Number(length) !== 0)) {
      return this.fail(res, new MalformedRequestError('upgrade-with-body', 'an upgrade request cannot carry a body'), () => undefined);
    }
    this.handle(req, res, { socket, head });
  }

  private handle(req: DownstreamRequest, res: DownstreamResponse, upgrade?: UpgradeContext): void {
    const spec = this.served;
    // The per-request debug line, built only when debug logging is on (the hot path skips it).
    const logged: Record<string, unknown> | undefined = this.log.enabled?.('debug') !== false ? { method: req.method, host: req.headers.host, path: req.url } : undefined;
    const debug = logged ? this.debugFinish(logged, performance.now()) : NO_FINISH;
    const rec = this.metrics && new RequestRecord(this.metrics, spec.direction, req.socket);
    let finish = rec ? rec.wrap(debug, { res }) : debug;

    // Strict stage: refuse what two parsers could read differently, then normalize the target
    // that route matching sees and the upstream is sent (docs/http-safety.md).
    const refused = checkRequest(req, this.server.limits);
    if (refused) return this.fail(res, refused, finish);
    const target = requestTarget(req.url ?? '/', hostHeader(req), req.method ?? 'GET', spec.direction);
    if (target instanceof HttpProxyError) return this.fail(res, target, finish);
    // Tracing (trace-span.ts): this hop's span, ended with the request's life.
    if (spec.tracing) finish = traceHttp1(spec, req, target, finish);
    if (unmetExpectation(req.rawHeaders)) return this.fail(res, new ExpectationFailedError(), finish);
    if (logged) {
      logged.host = target.host;
      logged.path = target.path;
    }

    if (spec.direction === 'inbound' && this.originalDestination) this.takeTargetPort(req);
    const snap = this.snapshot(this.current());

    const route = routeStage(spec, snap, target, req);
    if (route instanceof HttpProxyError) return this.fail(res, route, finish);
    if (logged) logged.route = route.name;
    // Authorization stage (authz-enforce.ts): before anything is sent on, on the port the route chose.
    if (spec.authz) {
      const port = spec.direction === 'inbound' ? inboundPort(routeClusterPort(route, snap), req.headers[TARGET_PORT_HEADER]) : spec.port;
      const denied = authorizeHttp(spec.authz, this.denials, { socket: req.socket, remoteAddress: req.socket.remoteAddress, method: req.method ?? 'GET', headers: req.headers, target, port }, spec.name);
      if (denied) return this.fail(res, denied, finish);
    }
    if (route.action.kind === 'direct-response') {
      res.writeHead(route.action.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(route.action.body) });
      res.end(route.action.body);
      return finish(route.action.status);
    }

    // Fault stage: delay, then abort, before any upstream is chosen (fault-inject.ts).
    const timeoutMs = route.timeoutMs ?? 0;
    const fault = spec.faultFilter ? decideFault(route.fault) : undefined;
    if (!fault || isNoFault(fault)) {
      return this.forwardStage(req, res, spec, snap, route, target, timeoutMs, logged, finish, upgrade, rec);
    }
    if (logged) logged.fault = fault;
    applyFault(fault, timeoutMs, res, (outcome) => {
      if (outcome.kind === 'downstream-closed') finish(499);
      else if (outcome.kind === 'error') this.fail(res, outcome.error, finish);
      else this.forwardStage(req, res, spec, snap, route, target, outcome.timeoutMs, logged, finish, upgrade, rec);
    });
  }

  /** Backend → pool limits → endpoint → connect; `timeoutMs` is what is left of the route timeout. */
  private forwardStage(
    req: DownstreamRequest,
    res: DownstreamResponse,
    spec: HttpListener,
    snap: ProxySnapshot,
    route: Route,
    target: RequestTarget,
    timeoutMs: number,
    logged: Record<string, unknown> | undefined,
    finish: Finish,
    upgrade: UpgradeContext | undefined,
    rec: RequestRecord | undefined,
  ): void {
    const backend = backendStage(snap, route);
    if (backend instanceof HttpProxyError) return this.fail(res, backend, finish);
    rec?.to(backend.cluster);
    if (logged) logged.cluster = backend.cluster.name;

    // Pool-limits stage (pool-limits.ts): forward now, wait for a free slot, or overflow (503).
    const limits = backend.limits;
    if (limits.tryEnter()) {
      // A slot is free: taken at once, released when the request ends (no queue entry).
      let held = true;
      const done: Finish = (status, error) => {
        if (held) {
          held = false;
          limits.leave();
        }
        finish(status, error);
      };
      return this.pickStage(req, res, spec, snap, route, backend, target, timeoutMs, logged, done, upgrade, rec);
    }
    let release: (() => void) | undefined;
    const done = (status: number, error?: HttpProxyError): void => {
      release?.();
      finish(status, error);
    };
    const withdraw = limits.enter((r) => {
      release = r;
      this.pickStage(req, res, spec, snap, route, backend, target, timeoutMs, logged, done, upgrade, rec);
    });
    if (!withdraw) return this.fail(res, new UpstreamOverflowError(backend.cluster.name), finish);
    if (!release) {
      res.once('close', () => {
        if (release) return;
        withdraw();
        finish(499);
      });
    }
  }

  /** Endpoint → connect (or the upgrade's connect), once the request holds a pool slot; `done` releases it. */
  private pickStage(
    req: DownstreamRequest,
    res: DownstreamResponse,
    spec: HttpListener,
    snap: ProxySnapshot,
    route: Route,
    backend: ClusterSnapshot,
    target: RequestTarget,
    timeoutMs: number,
    logged: Record<string, unknown> | undefined,
    done: Finish,
    upgrade: UpgradeContext | undefined,
    rec: RequestRecord | undefined,
  ): void {
    const pick = endpointStage(backend);
    if (pick instanceof HttpProxyError) return this.fail(res, pick, done);
    rec?.to(backend.cluster, pick.endpoint);
    // Upstream addresses go to debug logs only, never into responses.
    if (logged) logged.upstream = endpointKey(pick.endpoint);
    if (upgrade) {
      const ctx = { direction: spec.direction, connectTimeoutMs: backend.cluster.connectTimeoutMs, timeoutMs, idleTimeoutMs: this.server.limits.idleTimeoutMs, authority: absoluteAuthority(req.url) };
      upgradeStage(req, res, upgrade.socket, upgrade.head, pick, target.path, ctx, (outcome) => {
        if (outcome.kind === 'response') done(outcome.status);
        else if (outcome.kind === 'error') this.fail(res, outcome.error, done);
        else done(499);
      });
    } else this.connectStage(req, res, spec, snap, route, backend, pick, target, timeoutMs, done, rec);
  }

  private connectStage(
    req: DownstreamRequest,
    res: DownstreamResponse,
    spec: HttpListener,
    snap: ProxySnapshot,
    route: Route,
    backend: ClusterSnapshot,
    pick: UpstreamPick,
    target: RequestTarget,
    timeoutMs: number,
    finish: Finish,
    rec: RequestRecord | undefined,
  ): void {
    // Each attempt's pick is completed with its outcome, so balancers and outlier detection learn.
    let attempt = pick;
    const outbound = spec.direction === 'outbound';
    const span = spec.tracing && traceOf(req);
    const head = upstreamHead(span ? span.rawHeaders(req.rawHeaders) : req.rawHeaders, { direction: spec.direction, clientAddress: req.socket.remoteAddress, authority: absoluteAuthority(req.url) });
    const mirrors = route.mirrors;
    const copies = mirrors?.length ? mirrors.filter((m) => Math.random() < m.fraction) : NO_COPIES;
    const retry = route.retry;
    // One object of one shape per request (no spreads): fields that do not apply are undefined.
    const forward: ForwardTarget = {
      upstream: pick.upstream,
      targetPort: outbound ? pick.endpoint.targetPort : undefined,
      path: target.path,
      head,
      connectTimeoutMs: backend.cluster.connectTimeoutMs,
      timeoutMs,
      retry,
      // Retries (forward-http.ts) pick their endpoint again, through the same balancer.
      repick: retry
        ? (): ForwardEndpoint | HttpProxyError => {
            const next = endpointStage(backend);
            if (next instanceof HttpProxyError) return next;
            attempt.done(RETRIED_ATTEMPT);
            attempt = next;
            return { upstream: next.upstream, targetPort: outbound ? next.endpoint.targetPort : undefined };
          }
        : undefined,
      budgets: this.retryBudgets,
      onBody: copies.length ? (body: readonly Buffer[] | undefined) => mirrorStage(this.mirrors, { method: req.method ?? 'GET', direction: spec.direction, snap, route, copies, primary: head, target }, body) : undefined,
      keepBodyBytes: copies.length ? retry?.bufferLimitBytes ?? DEFAULT_BUFFER_LIMIT_BYTES : undefined,
    };
    forwardHttp(req, res, forward, (outcome) => {
      attempt.done(callResult(outcome));
      rec?.retried(outcome.retries);
      if (span) span.upstream(route, backend.cluster.name, endpointKey(attempt.endpoint), outcome.retries);
      if (outcome.kind === 'response') finish(outcome.status);
      else if (outcome.kind === 'error') this.fail(res, outcome.error, finish);
      else finish(499); // client closed first (Envoy logs 0 with DC; 499 reads better)
    });
  }

  /**
   * The one place an `HttpProxyError` becomes a response (or, once headers went out, a reset). A
   * refused request (`DownstreamProtocolError`) is counted and closes the connection: what follows
   * it on the wire cannot be trusted to start where we think it does.
   */
  private fail(res: DownstreamResponse, error: HttpProxyError, finish: Finish): void {
    if (res.headersSent) {
      res.destroy();
      finish(res.statusCode, error);
      return;
    }
    if (error instanceof DownstreamProtocolError) {
      recordRejection(this.log, error, { listener: this.served.name, client: res.req.socket.remoteAddress });
      if (!res.destroyed) respondAndClose(res, error);
    } else if (!res.destroyed) {
      res.writeHead(error.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(error.message) });
      res.end(error.message);
    }
    finish(error.status, error);
  }
}

/**
 * The request's Host value, as `headers.host` gives it (the first), read from the raw headers: the
 * lean request's headers object is then built only if a later stage needs it.
 */
function hostHeader(req: DownstreamRequest): string | undefined {
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === 4 && raw[i]!.toLowerCase() === 'host') return raw[i + 1];
  }
  return undefined;
}

const ABSOLUTE_AUTHORITY = /^https?:\/\/([^/?#]*)/i;

/**
 * The authority of an absolute-form target (outbound only, `http://app/x`): the request was routed
 * by it, and the upstream gets it as Host (RFC 9112 §3.2.2). `undefined` for origin-form.
 */
function absoluteAuthority(url: string | undefined): string | undefined {
  return url !== undefined && url[0] !== '/' ? ABSOLUTE_AUTHORITY.exec(url)?.[1] : undefined;
}

/** Called once when a request's life ends, with the status the client got. */
type Finish = (status: number, error?: HttpProxyError) => void;
const NO_FINISH: Finish = () => undefined;
const NO_COPIES: readonly MirrorPolicy[] = [];

