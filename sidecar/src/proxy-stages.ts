/**
 * The proxy stages that do not depend on the downstream protocol, shared by the HTTP/1.1 listener
 * (listener-http.ts) and the HTTP/2 one (listener-h2.ts): route → backend → endpoint, how an
 * upstream call's outcome is reported to balancers, and the mirror stage. Each stage returns a value
 * or an `HttpProxyError`; only immutable snapshots are read.
 */
import type { IncomingMessage } from 'node:http';
import type { CallResult } from './balancer';
import type { HttpListener, ListenerDirection, MirrorPolicy, Route } from './config';
import type { ForwardOutcome } from './forward-http';
import { requestHead, type UpstreamHead } from './headers-http';
import { DEFAULT_MIRROR_TIMEOUT_MS, pickShadow, shadowHost, type RequestMirrors } from './mirror-http';
import type { RequestTarget } from './path-normalize';
import { ClusterNotFoundError, HttpProxyError, NoHealthyUpstreamError, NoRouteError } from './proxy-errors';
import { compiledRouteTable, type ClusterSnapshot, type ProxySnapshot, type UpstreamPick } from './proxy-snapshot';
import type { CompiledRouteTable, RouteRequest } from './route-table';
import { pickWeightedCluster } from './route-weighted';

/** Route stage: the listener's table (RDS by name, or inline), then vhost and route. */
export function routeStage(spec: HttpListener, snap: ProxySnapshot, target: RequestTarget, req: { readonly method?: string | undefined; readonly headers: IncomingMessage['headers'] }): Route | HttpProxyError {
  const table: CompiledRouteTable | undefined =
    spec.routes.kind === 'rds' ? snap.routeTables.get(spec.routes.name) : compiledRouteTable(spec.routes.table);
  const selected = table?.select(new RouteQuery(target, req.method ?? 'GET', req));
  return selected ? selected.route : new NoRouteError(target.host);
}

/**
 * What route matching sees of one request. `headers` is read only by a route with header
 * matchers: the lean HTTP/1.1 request builds its headers object on first read, so a request whose
 * routes match on host and path alone never builds one.
 */
class RouteQuery implements RouteRequest {
  readonly host: string;
  readonly path: string;

  constructor(
    target: RequestTarget,
    readonly method: string,
    private readonly req: { readonly headers: IncomingMessage['headers'] },
  ) {
    this.host = target.host;
    this.path = target.path;
  }

  get headers(): IncomingMessage['headers'] {
    return this.req.headers;
  }
}

/** Backend stage: the route's cluster (a weighted route picks one by weight). */
export function backendStage(snap: ProxySnapshot, route: Route): ClusterSnapshot | HttpProxyError {
  const action = route.action;
  const name = action.kind === 'cluster' ? action.cluster : action.kind === 'weighted' ? pickWeightedCluster(action) : undefined;
  const cluster = name === undefined ? undefined : snap.clusters.get(name);
  return cluster ?? new ClusterNotFoundError(name ?? '');
}

/** Endpoint stage: the cluster's balancer picks a healthy endpoint (a handle to complete with the outcome). */
export function endpointStage(backend: ClusterSnapshot): UpstreamPick | HttpProxyError {
  return backend.balancer.pick() ?? new NoHealthyUpstreamError(backend.cluster.name);
}

/** An attempt given up for a retry: forward-http.ts does not say why, so it counts as a gateway error. */
export const RETRIED_ATTEMPT: CallResult = { kind: 'failed' };

/** The last attempt's outcome, as balancers and outlier detection read it. */
export function callResult(outcome: ForwardOutcome): CallResult {
  if (outcome.kind === 'response') return { kind: 'response', status: outcome.status };
  if (outcome.kind === 'downstream-closed') return { kind: 'cancelled' };
  const code = outcome.error.code;
  if (code === 'UPSTREAM_CONNECT') return { kind: 'connect-failure' };
  if (code === 'UPSTREAM_RESET') return { kind: 'reset' };
  if (code.includes('TIMEOUT')) return { kind: 'timeout' };
  return { kind: 'failed' };
}

/** What the mirror stage needs of the primary request. */
export interface MirrorContext {
  readonly method: string;
  readonly direction: ListenerDirection;
  readonly snap: ProxySnapshot;
  readonly route: Route;
  /** The route's mirror policies selected for this request (by their fractions). */
  readonly copies: readonly MirrorPolicy[];
  /** The primary's upstream head; a copy gets the same headers with a shadow `Host`. */
  readonly primary: UpstreamHead;
  readonly target: RequestTarget;
}

/**
 * Mirror stage: a fire-and-forget copy per selected mirror policy, once the body is whole (`body`
 * undefined: it outgrew the buffer, so nothing is mirrored). Every failure here is counted and
 * swallowed: nothing reaches the primary request.
 */
export function mirrorStage(mirrors: RequestMirrors, m: MirrorContext, body: readonly Buffer[] | undefined): void {
  const stats = mirrors.stats;
  if (!body) {
    stats.bodyTooLarge += m.copies.length;
    return;
  }
  for (const copy of m.copies) {
    const pick = pickShadow(mirrors, m.snap.clusters, copy.cluster);
    if (!pick) continue;
    const targetPort = m.direction === 'outbound' ? pick.endpoint.targetPort : undefined;
    mirrors.send({
      upstream: pick.upstream,
      head: requestHead(m.method, m.target.path, m.primary, targetPort, shadowHost(m.primary.host ?? m.target.host)),
      framing: m.primary.framing,
      body,
      timeoutMs: m.route.timeoutMs || DEFAULT_MIRROR_TIMEOUT_MS,
      done: (result) => pick.done(result),
    });
  }
}
