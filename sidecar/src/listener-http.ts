/**
 * One HTTP/1.1 proxy listener. Each request runs the stages in order, each a small function:
 *
 *   strict (refuse smuggling vectors, limits; http-strict.ts) → target (normalize path and Host;
 *     path-normalize.ts) → snapshot (config read once) → route (vhost + route)
 *     → backend (cluster, weighted) → pool limits (admit, queue or overflow) → endpoint (cluster
 *     balancer; the pick is completed with the outcome) → connect (forward through the pool)
 *
 * What llhttp refuses before a request exists (and the header timeouts) is answered by the server
 * itself (`ManagedHttpServer`, server-lifecycle.ts); docs/http-safety.md lists every case.
 *
 * Every stage returns a value or an `HttpProxyError`; `fail()` is the one place an error becomes
 * a response. Only immutable snapshots are read on this path; compiling happens once per config.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from '@weft/api';
import { TARGET_PORT_HEADER, type HttpListener, type ProxyConfig, type Route } from './config';
import { forwardHttp, type ForwardEndpoint, type ForwardOutcome, type ForwardTarget } from './forward-http';
import type { CallResult } from './balancer';
import { upstreamRequestHeaders } from './headers-http';
import type { HttpLimits } from './http-limits';
import { checkRequest, recordRejection, respondAndClose } from './http-strict';
import { requestTarget, type RequestTarget } from './path-normalize';
import { ClusterNotFoundError, DownstreamProtocolError, HttpProxyError, NoHealthyUpstreamError, NoRouteError, UpstreamOverflowError } from './proxy-errors';
import { compiledRouteTable, snapshotOf, type ClusterSnapshot, type ProxySnapshot, type UpstreamPick } from './proxy-snapshot';
import type { CompiledRouteTable } from './route-table';
import { pickWeightedCluster } from './route-weighted';
import { ManagedHttpServer } from './server-lifecycle';
import type { RetryBudgets } from './retry-budget';
import { endpointKey, type UpstreamPool } from './upstream-pool';

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

  constructor(
    spec: HttpListener,
    private readonly current: () => ProxyConfig,
    deps: ProxyListenerDeps,
  ) {
    this.served = spec;
    this.log = deps.log.child({ module: 'listener-http', listener: spec.name });
    this.pool = deps.pool;
    this.originalDestination = deps.originalDestination;
    this.retryBudgets = deps.retryBudgets;
    this.server = new ManagedHttpServer(`listener ${spec.name}`, (req, res) => this.handle(req, res), this.log, { limits: deps.limits ?? {} });
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
    this.served = spec;
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

  /** Capture mode: the app port is the redirected connection's original port. */
  private takeTargetPort(req: IncomingMessage): void {
    let port = redirectedPort.get(req.socket);
    if (port === undefined) {
      const d = this.originalDestination!(req.socket);
      redirectedPort.set(req.socket, (port = d ? String(d.port) : null));
    }
    if (port === null) delete req.headers[TARGET_PORT_HEADER];
    else req.headers[TARGET_PORT_HEADER] = port;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    const spec = this.served;
    const logged: Record<string, unknown> = { method: req.method, host: req.headers.host, path: req.url };
    const finish = (status: number, error?: HttpProxyError): void => {
      this.log.debug('request', { ...logged, status, code: error?.code, ms: Math.round(performance.now() - started) });
    };

    // Strict stage: refuse what two parsers could read differently, then normalize the target
    // that route matching sees and the upstream is sent (docs/http-safety.md).
    const refused = checkRequest(req, this.server.limits);
    if (refused) return this.fail(res, refused, finish);
    const target = requestTarget(req.url ?? '/', req.headers.host, req.method ?? 'GET', spec.direction);
    if (target instanceof HttpProxyError) return this.fail(res, target, finish);
    logged.host = target.host;
    logged.path = target.path;

    if (spec.direction === 'inbound' && this.originalDestination) this.takeTargetPort(req);
    const snap = snapshotOf(this.current(), this.pool);

    const route = routeStage(spec, snap, target, req);
    if (route instanceof HttpProxyError) return this.fail(res, route, finish);
    logged.route = route.name;
    if (route.action.kind === 'direct-response') {
      res.writeHead(route.action.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(route.action.body) });
      res.end(route.action.body);
      return finish(route.action.status);
    }

    const backend = backendStage(snap, route);
    if (backend instanceof HttpProxyError) return this.fail(res, backend, finish);
    logged.cluster = backend.cluster.name;

    // Pool-limits stage (pool-limits.ts): forward now, wait for a free slot, or overflow (503).
    let release: (() => void) | undefined;
    const done = (status: number, error?: HttpProxyError): void => {
      release?.();
      finish(status, error);
    };
    const withdraw = backend.limits.enter((r) => {
      release = r;
      const pick = endpointStage(backend);
      if (pick instanceof HttpProxyError) return this.fail(res, pick, done);
      // Upstream addresses go to debug logs only, never into responses.
      logged.upstream = endpointKey(pick.endpoint);
      this.connectStage(req, res, spec, route, backend, pick, target, done);
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

  private connectStage(
    req: IncomingMessage,
    res: ServerResponse,
    spec: HttpListener,
    route: Route,
    backend: ClusterSnapshot,
    pick: UpstreamPick,
    target: RequestTarget,
    finish: (status: number, error?: HttpProxyError) => void,
  ): void {
    // Each attempt's pick is completed with its outcome, so balancers and outlier detection learn.
    let attempt = pick;
    const to = ({ endpoint: e, agent }: UpstreamPick): ForwardEndpoint => ({
      address: e.address,
      port: e.port,
      agent,
      headers: upstreamRequestHeaders(req.headers, { direction: spec.direction, clientAddress: req.socket.remoteAddress, targetPort: e.targetPort }),
    });
    const repick = (): ForwardEndpoint | HttpProxyError => {
      const next = endpointStage(backend);
      if (next instanceof HttpProxyError) return next;
      attempt.done(RETRIED_ATTEMPT);
      attempt = next;
      return to(next);
    };
    const forward: ForwardTarget = {
      ...to(pick),
      path: target.path,
      connectTimeoutMs: backend.cluster.connectTimeoutMs,
      timeoutMs: route.timeoutMs ?? 0,
      // Retries (forward-http.ts) pick their endpoint again, through the same balancer.
      ...(route.retry ? { retry: route.retry, repick } : {}),
      ...(this.retryBudgets ? { budgets: this.retryBudgets } : {}),
    };
    forwardHttp(req, res, forward, (outcome) => {
      attempt.done(callResult(outcome));
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
  private fail(res: ServerResponse, error: HttpProxyError, finish: (status: number, error?: HttpProxyError) => void): void {
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

/** Route stage: the listener's table (RDS by name, or inline), then vhost and route. */
function routeStage(spec: HttpListener, snap: ProxySnapshot, target: RequestTarget, req: IncomingMessage): Route | HttpProxyError {
  const table: CompiledRouteTable | undefined =
    spec.routes.kind === 'rds' ? snap.routeTables.get(spec.routes.name) : compiledRouteTable(spec.routes.table);
  const selected = table?.select({ host: target.host, method: req.method ?? 'GET', path: target.path, headers: req.headers });
  return selected ? selected.route : new NoRouteError(target.host);
}

/** Backend stage: the route's cluster (a weighted route picks one by weight). */
function backendStage(snap: ProxySnapshot, route: Route): ClusterSnapshot | HttpProxyError {
  const action = route.action;
  const name = action.kind === 'cluster' ? action.cluster : action.kind === 'weighted' ? pickWeightedCluster(action) : undefined;
  const cluster = name === undefined ? undefined : snap.clusters.get(name);
  return cluster ?? new ClusterNotFoundError(name ?? '');
}

/** Endpoint stage: the cluster's balancer picks a healthy endpoint (a handle to complete with the outcome). */
function endpointStage(backend: ClusterSnapshot): UpstreamPick | HttpProxyError {
  return backend.balancer.pick() ?? new NoHealthyUpstreamError(backend.cluster.name);
}

/** An attempt given up for a retry: forward-http.ts does not say why, so it counts as a gateway error. */
const RETRIED_ATTEMPT: CallResult = { kind: 'failed' };

/** The last attempt's outcome, as balancers and outlier detection read it. */
function callResult(outcome: ForwardOutcome): CallResult {
  if (outcome.kind === 'response') return { kind: 'response', status: outcome.status };
  if (outcome.kind === 'downstream-closed') return { kind: 'cancelled' };
  const code = outcome.error.code;
  if (code === 'UPSTREAM_CONNECT') return { kind: 'connect-failure' };
  if (code === 'UPSTREAM_RESET') return { kind: 'reset' };
  if (code.includes('TIMEOUT')) return { kind: 'timeout' };
  return { kind: 'failed' };
}
