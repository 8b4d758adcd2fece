/**
 * Route selection: a `RouteTable` compiled once per config into lookup structures, then asked
 * `select()` per request. Semantics are Envoy's (RouteConfiguration → VirtualHost → Route).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { HeaderMatcher, PathMatcher, Route, RouteTable, VirtualHost } from './config';

/** What route matching sees of a request. `host` is the Host header (or `:authority`) as received. */
export interface RouteRequest {
  readonly host: string;
  readonly method: string;
  /** The request target's path, query string included (it is stripped for path matching). */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
}

export interface RouteSelection {
  readonly virtualHost: VirtualHost;
  readonly route: Route;
}

/**
 * An immutable, compiled route table. `select()` is synchronous, allocation-light and never throws;
 * `undefined` means no virtual host matched the host, or none of its routes matched.
 */
export interface CompiledRouteTable {
  readonly name: string;
  select(req: RouteRequest): RouteSelection | undefined;
  /** The virtual host alone (Envoy's domain search), for callers that report which vhost missed. */
  virtualHostFor(host: string): VirtualHost | undefined;
}

type Matcher = (req: RouteRequest, path: string) => boolean;

interface CompiledVirtualHost {
  readonly vhost: VirtualHost;
  /** Each route with its matcher and the selection `select()` returns for it (built once). */
  readonly routes: readonly { readonly selection: RouteSelection; readonly matches: Matcher }[];
}

interface Wildcard {
  readonly affix: string;
  readonly vhost: CompiledVirtualHost;
}

/**
 * Compiles `table`. Domain search, per Envoy: exact domains first, then suffix wildcards (`*.foo`,
 * longest suffix first), then prefix wildcards (`foo.*`, longest first); a wildcard must match at
 * least one character. When the Host carries a port (`foo:8080`) and no such domain matched, the
 * same search runs on the host without the port; only then does `*` catch it. (So `foo:8080`
 * reaches vhost `foo` rather than a catch-all `*` vhost; when no `*` exists this is exactly "retry
 * without the port".) The first virtual host listing a domain owns it, as Envoy rejects duplicates.
 *
 * Routes: the first matching route wins. A route matches when its path matcher matches the path
 * without query string or fragment (prefix / exact: case-sensitive; regex: full match) and every
 * header matcher matches. Header matchers follow Envoy's `HeaderUtility::matchHeaders`: values of a
 * repeated header are joined with `,`; `:method`, `:authority`, `:path` and `:scheme` are
 * pseudo-headers; an absent header matches only a `present` matcher (`present: false`, or
 * `present: true` with `invert`) — an inverted exact/prefix/regex matcher does not match an absent
 * header.
 */
export function compileRouteTable(table: RouteTable): CompiledRouteTable {
  const exact = new Map<string, CompiledVirtualHost>();
  const suffixes: Wildcard[] = [];
  const prefixes: Wildcard[] = [];
  let catchAll: CompiledVirtualHost | undefined;
  const claimed = new Set<string>();

  for (const vhost of table.virtualHosts) {
    const compiled: CompiledVirtualHost = {
      vhost,
      routes: vhost.routes.map((route) => ({ selection: { virtualHost: vhost, route }, matches: compileMatch(route) })),
    };
    for (const raw of vhost.domains) {
      const domain = raw.toLowerCase();
      if (claimed.has(domain)) continue;
      claimed.add(domain);
      if (domain === '*') catchAll = compiled;
      else if (domain.startsWith('*')) suffixes.push({ affix: domain.slice(1), vhost: compiled });
      else if (domain.endsWith('*')) prefixes.push({ affix: domain.slice(0, -1), vhost: compiled });
      else exact.set(domain, compiled);
    }
  }
  // Stable sorts keep config order among equal lengths.
  suffixes.sort((a, b) => b.affix.length - a.affix.length);
  prefixes.sort((a, b) => b.affix.length - a.affix.length);

  const specific = (host: string): CompiledVirtualHost | undefined => {
    const hit = exact.get(host);
    if (hit) return hit;
    for (const w of suffixes) if (host.length > w.affix.length && host.endsWith(w.affix)) return w.vhost;
    for (const w of prefixes) if (host.length > w.affix.length && host.startsWith(w.affix)) return w.vhost;
    return undefined;
  };

  const find = (rawHost: string): CompiledVirtualHost | undefined => {
    const host = rawHost.toLowerCase();
    const hit = specific(host);
    if (hit) return hit;
    const bare = stripPort(host);
    if (bare !== host) {
      const again = specific(bare);
      if (again) return again;
    }
    return catchAll;
  };

  return {
    name: table.name,
    virtualHostFor: (host) => find(host)?.vhost,
    select(req) {
      const vh = find(req.host);
      if (!vh) return undefined;
      const path = pathOnly(req.path);
      for (const r of vh.routes) if (r.matches(req, path)) return r.selection;
      return undefined;
    },
  };
}

/** `host:port` → `host`; `[v6]:port` → `[v6]`; anything else unchanged (a bare IPv6 has many colons). */
export function stripPort(host: string): string {
  const m = /^(\[[^\]]*\]|[^:]*):\d+$/.exec(host);
  return m ? m[1]! : host;
}

function pathOnly(target: string): string {
  const q = target.search(/[?#]/);
  return q < 0 ? target : target.slice(0, q);
}

function compileMatch(route: Route): Matcher {
  const path = compilePath(route.match.path);
  const headers = route.match.headers.map(compileHeader);
  if (headers.length === 0) return (_req, p) => path(p);
  return (req, p) => path(p) && headers.every((h) => h(req));
}

function compilePath(m: PathMatcher): (path: string) => boolean {
  switch (m.kind) {
    case 'prefix':
      return (p) => p.startsWith(m.value);
    case 'exact':
      return (p) => p === m.value;
    case 'regex': {
      const re = fullMatch(m.re);
      return (p) => re.test(p);
    }
  }
}

/**
 * Anchors a regex for full-match semantics and drops `g`/`y`, whose `lastIndex` state would make
 * `test()` depend on the previous request. Idempotent for an already anchored `^(?:re)$`.
 */
function fullMatch(re: RegExp): RegExp {
  return new RegExp(`^(?:${re.source})$`, re.flags.replace(/[gy]/g, ''));
}

function headerValue(req: RouteRequest, name: string): string | undefined {
  switch (name) {
    case ':method':
      return req.method;
    case ':authority':
      return req.host === '' ? undefined : req.host;
    case ':path':
      return req.path;
    case ':scheme':
      return 'http';
  }
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

function compileHeader(m: HeaderMatcher): (req: RouteRequest) => boolean {
  const name = m.name.toLowerCase();
  let test: (value: string) => boolean;
  switch (m.kind) {
    case 'exact':
      test = (v) => v === m.value;
      break;
    case 'prefix':
      test = (v) => v.startsWith(m.value);
      break;
    case 'regex': {
      const re = fullMatch(m.re);
      test = (v) => re.test(v);
      break;
    }
    case 'present':
      return (req) => ((headerValue(req, name) !== undefined) === m.present) !== m.invert;
  }
  return (req) => {
    const v = headerValue(req, name);
    // Envoy: an absent header fails a value matcher whether inverted or not.
    return v !== undefined && test(v) !== m.invert;
  };
}
