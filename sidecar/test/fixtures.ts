/**
 * Shared test builders: ProxyConfig pieces with sensible defaults, real loopback upstreams and a
 * real HTTP client. No test double stands in for sidecar code.
 */
import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { silentLogger, type Logger } from '@weft/api';
import type {
  Cluster,
  Endpoint,
  HeaderMatcher,
  HttpListener,
  PathMatcher,
  ProxyConfig,
  Route,
  RouteAction,
  RouteTable,
  VirtualHost,
} from '../src/config';
import { HttpProxyListener } from '../src/listener-http';
import { UpstreamPool } from '../src/upstream-pool';

// ---- config builders ----------------------------------------------------------------------

export const prefix = (value = '/'): PathMatcher => ({ kind: 'prefix', value });
export const exactPath = (value: string): PathMatcher => ({ kind: 'exact', value });
export const regexPath = (value: string): PathMatcher => ({ kind: 'regex', value, re: new RegExp(`^(?:${value})$`) });

export const header = {
  exact: (name: string, value: string, invert = false): HeaderMatcher => ({ name, kind: 'exact', value, invert }),
  prefix: (name: string, value: string, invert = false): HeaderMatcher => ({ name, kind: 'prefix', value, invert }),
  regex: (name: string, value: string, invert = false): HeaderMatcher => ({ name, kind: 'regex', value, re: new RegExp(`^(?:${value})$`), invert }),
  present: (name: string, present = true, invert = false): HeaderMatcher => ({ name, kind: 'present', present, invert }),
};

export function weighted(...clusters: [cluster: string, weight: number][]): RouteAction {
  const list = clusters.map(([cluster, weight]) => ({ cluster, weight }));
  return { kind: 'weighted', clusters: list, totalWeight: list.reduce((a, c) => a + c.weight, 0) };
}

export function directResponse(status: number, body: string): RouteAction {
  return { kind: 'direct-response', status, body };
}

/** A route; `to` is a cluster name or a full action. Matches every path unless told otherwise. */
export function route(
  name: string,
  to: string | RouteAction,
  opts: { path?: PathMatcher; headers?: HeaderMatcher[]; timeoutMs?: number } = {},
): Route {
  return {
    name,
    match: { path: opts.path ?? prefix('/'), headers: opts.headers ?? [] },
    action: typeof to === 'string' ? { kind: 'cluster', cluster: to } : to,
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  };
}

export const vhost = (name: string, domains: string[], routes: Route[]): VirtualHost => ({ name, domains, routes });
export const routeTable = (name: string, virtualHosts: VirtualHost[]): RouteTable => ({ name, virtualHosts });

export function endpoint(address: string, port: number, opts: Partial<Omit<Endpoint, 'address' | 'port'>> = {}): Endpoint {
  return { address, port, weight: 1, healthy: true, ...opts };
}

/** An EDS cluster (service name = cluster name), round robin, 1 s connect timeout. */
export function cluster(name: string, opts: Partial<Omit<Cluster, 'name'>> = {}): Cluster {
  return { name, discovery: 'EDS', edsServiceName: name, lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, staticEndpoints: [], ...opts };
}

/** An outbound listener on 127.0.0.1, any port, routes from RDS table `outbound`. */
export function listener(name: string, opts: Partial<Omit<HttpListener, 'name'>> = {}): HttpListener {
  return { name, direction: 'outbound', address: '127.0.0.1', port: 0, routes: { kind: 'rds', name: 'outbound' }, ...opts };
}

export function proxyConfig(parts: {
  listeners?: HttpListener[];
  routeTables?: RouteTable[];
  clusters?: Cluster[];
  endpoints?: Record<string, Endpoint[]>;
}): ProxyConfig {
  return {
    listeners: new Map((parts.listeners ?? []).map((l) => [l.name, l])),
    routeTables: new Map((parts.routeTables ?? []).map((t) => [t.name, t])),
    clusters: new Map((parts.clusters ?? []).map((c) => [c.name, c])),
    endpoints: new Map(Object.entries(parts.endpoints ?? {})),
  };
}

/** The common shape: RDS table `outbound` with one `*` vhost routing everything to `cluster`. */
export function simpleConfig(clusterName: string, endpoints: Endpoint[], opts: { timeoutMs?: number } = {}): ProxyConfig {
  return proxyConfig({
    routeTables: [routeTable('outbound', [vhost('all', ['*'], [route('default', clusterName, opts)])])],
    clusters: [cluster(clusterName)],
    endpoints: { [clusterName]: endpoints },
  });
}

// ---- real servers and clients -------------------------------------------------------------

export interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

export interface Upstream {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** TCP connections accepted so far. */
  connections: number;
  /** Connections closed so far. */
  closedConnections: number;
  readonly received: Received[];
  endpoint(opts?: Partial<Omit<Endpoint, 'address' | 'port'>>): Endpoint;
  close(): Promise<void>;
}

export type UpstreamHandler = (req: Received, res: http.ServerResponse) => void;

/** Answers 200 with `name` as the body and `x-upstream: name`. */
export const replyWithName =
  (name: string): UpstreamHandler =>
  (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': name });
    res.end(name);
  };

/** A real HTTP server on port 0 that records each request (body read in full) before `handler` runs. */
export async function startUpstream(name: string, handler: UpstreamHandler = replyWithName(name), address = '127.0.0.1'): Promise<Upstream> {
  const sockets = new Set<Socket>();
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() };
      received.push(r);
      handler(r, res);
    });
  });
  const up: Upstream = {
    name,
    address,
    port: 0,
    connections: 0,
    closedConnections: 0,
    received,
    endpoint: (opts) => endpoint(address, up.port, opts),
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  server.on('connection', (s: Socket) => {
    up.connections++;
    sockets.add(s);
    s.on('close', () => {
      up.closedConnections++;
      sockets.delete(s);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  (up as { port: number }).port = (server.address() as AddressInfo).port;
  return up;
}

export interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

/** One request with a real client; `agent` defaults to a fresh non-keep-alive one. */
export function send(
  port: number,
  opts: { path?: string; method?: string; host?: string; headers?: http.OutgoingHttpHeaders; body?: string; agent?: http.Agent; address?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: opts.address ?? '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: { ...(opts.host ? { host: opts.host } : {}), ...opts.headers },
        agent: opts.agent ?? new http.Agent({ keepAlive: false }),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Writes `raw` bytes on a fresh connection and resolves with everything read until the peer closes. */
export function sendRaw(port: number, raw: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(port, '127.0.0.1', () => socket.write(raw));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString()));
    socket.on('error', reject);
  });
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface TestProxy {
  readonly listener: HttpProxyListener;
  readonly pool: UpstreamPool;
  readonly port: number;
  /** Swaps the config the listener reads per request. */
  set(config: ProxyConfig): void;
  close(): Promise<void>;
}

/** A real `HttpProxyListener` on 127.0.0.1:0 serving `config` with `spec` (default: outbound, RDS `outbound`). */
export async function startProxy(
  config: ProxyConfig,
  spec: HttpListener = listener('outbound'),
  deps: { log?: Logger; pool?: UpstreamPool } = {},
): Promise<TestProxy> {
  let current = config;
  const pool = deps.pool ?? new UpstreamPool();
  const l = new HttpProxyListener(spec, () => current, { log: deps.log ?? silentLogger, pool });
  await l.listen();
  return {
    listener: l,
    pool,
    port: l.address()!.port,
    set: (c) => {
      current = c;
    },
    close: async () => {
      l.destroy();
      await l.close();
      pool.destroy();
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
