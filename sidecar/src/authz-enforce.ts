/**
 * Authorization on the inbound data path (docs/configuration.md, "AuthorizationPolicy"): the
 * stage HTTP/1.1, HTTP/2 and TCP share. It gathers a request's facts — the peer's verified SPIFFE
 * ID (identity.ts), the normalized path and Host (path-normalize.ts, the same form routing sees),
 * the method, the app port — runs the listener's compiled RBAC engines (authz-engine.ts), and on
 * a denial counts it (`weft_authz_denials_total{policy, action}`) and logs it at info with the
 * policy and rule that decided. HTTP denials become `AuthzDeniedError` (403 `RBAC: access denied`,
 * Envoy's body; gRPC PERMISSION_DENIED); a denied TCP connection is closed by the caller.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from '@weft/api';
import { authorize, policyOfKey, type Authz, type AuthzDecision, type AuthzFacts } from './authz-engine';
import { peerSpiffeId } from './identity';
import type { Route } from './config';
import { MetricsRegistry, type Counter } from './metrics';
import type { ProxySnapshot } from './proxy-snapshot';
import { HttpProxyError } from './proxy-errors';

/** An authorization policy denied the request (Envoy's RBAC local reply). */
export class AuthzDeniedError extends HttpProxyError {
  readonly code = 'AUTHZ_DENIED';
  readonly status = 403;
  constructor(readonly policy: string) {
    super('RBAC: access denied');
  }
}

/** The `policy` label of a denial because no ALLOW policy matched. */
export const NO_MATCHING_ALLOW = 'none';

/** Where denials are counted and logged; one per sidecar, shared by every listener. */
export class AuthzDenials {
  private readonly counter: Counter<'policy' | 'action'>;

  constructor(registry: MetricsRegistry, private readonly log: Logger) {
    this.counter = registry.counter('weft_authz_denials_total', 'Requests and connections denied by an AuthorizationPolicy, by policy (namespace/name; "none": no ALLOW policy matched) and action', ['policy', 'action']);
  }

  /** Counts and logs one denial; returns the policy label. */
  record(d: Extract<AuthzDecision, { allowed: false }>, context: Record<string, unknown>): string {
    const { policy, rule } = d.policy === undefined ? { policy: NO_MATCHING_ALLOW, rule: undefined } : policyOfKey(d.policy);
    this.counter.inc({ policy, action: d.action });
    this.log.info('authorization denied', { policy, ...(rule !== undefined ? { rule } : {}), action: d.action, ...context });
    return policy;
  }

  /** The count for one label pair (tests, `/metrics` reads the registry). */
  count(policy: string, action: 'ALLOW' | 'DENY'): number {
    return this.counter.get({ policy, action });
  }
}

/** What the HTTP stage needs of a request. */
export interface AuthzHttpRequest {
  readonly socket: object;
  readonly remoteAddress: string | undefined;
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  /** Normalized (path-normalize.ts): path with the query as received, and Host. */
  readonly target: { readonly host: string; readonly path: string };
  /** The app port the request goes to. */
  readonly port: number | undefined;
}

/**
 * The authorization stage for one HTTP request: `undefined` when allowed, else the error to answer
 * with (already counted and logged). `listener` names the listener in the log line.
 */
export function authorizeHttp(authz: Authz, denials: AuthzDenials, r: AuthzHttpRequest, listener: string): AuthzDeniedError | undefined {
  const q = r.target.path.indexOf('?');
  const path = matchPath(q < 0 ? r.target.path : r.target.path.slice(0, q));
  const facts: AuthzFacts = {
    principal: peerSpiffeId(r.socket),
    sourceAddress: r.remoteAddress,
    destinationPort: r.port,
    http: { method: r.method, path, pathWithQuery: r.target.path, host: r.target.host, headers: r.headers },
  };
  const d = authorize(authz, facts);
  if (d.allowed) return undefined;
  const policy = denials.record(d, { listener, principal: facts.principal ?? null, client: r.remoteAddress, method: r.method, path, host: r.target.host, port: r.port ?? null });
  return new AuthzDeniedError(policy);
}

/**
 * The path rules match: the normalized path with each segment's `;parameters` removed, the
 * resource a servlet container (Tomcat, Jetty) resolves — so `/admin;x` and `/admin;a=b/x` are
 * decided as `/admin` and `/admin/x`, and a DENY rule cannot be bypassed with `;`
 * (docs/http-safety.md). The upstream still gets the path as normalized.
 */
export function matchPath(path: string): string {
  return path.includes(';') ? path.replace(/;[^/]*/g, '') : path;
}

/** The authorization stage for one TCP connection: true when allowed (a denial is counted and logged). */
export function authorizeTcp(authz: Authz, denials: AuthzDenials, socket: { readonly remoteAddress?: string | undefined }, port: number, listener: string): boolean {
  const facts: AuthzFacts = { principal: peerSpiffeId(socket), sourceAddress: socket.remoteAddress, destinationPort: port };
  const d = authorize(authz, facts);
  if (d.allowed) return true;
  denials.record(d, { listener, protocol: 'tcp', principal: facts.principal ?? null, client: socket.remoteAddress, port });
  return false;
}

/** The app port of an inbound request: the port of the inbound cluster its route chose, else `x-weft-target-port`. */
export function inboundPort(clusterPort: number | undefined, targetPortHeader: string | string[] | undefined): number | undefined {
  if (clusterPort !== undefined) return clusterPort;
  const n = typeof targetPortHeader === 'string' && /^\d{1,5}$/.test(targetPortHeader) ? Number(targetPortHeader) : NaN;
  return n >= 1 && n <= 65535 ? n : undefined;
}

/** The port of the single-endpoint STATIC cluster a route sends to (an inbound app port), if any. */
export function routeClusterPort(route: Route, snap: ProxySnapshot): number | undefined {
  if (route.action.kind !== 'cluster') return undefined;
  const c = snap.clusters.get(route.action.cluster)?.cluster;
  return c?.discovery === 'STATIC' && c.staticEndpoints.length === 1 ? c.staticEndpoints[0]!.port : undefined;
}

/** A listener's own counter when its owner passed none (tests, embedders): denials are still logged. */
export function defaultDenials(log: Logger): AuthzDenials {
  return new AuthzDenials(new MetricsRegistry(), log);
}
