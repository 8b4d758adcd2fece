/**
 * The sidecar's local servers (SPEC.md, "Ports"): the admin API on 15000, Prometheus `/metrics` on
 * 15020 and the readiness probe on 15021. They only read through callbacks, so they hold no state
 * of their own.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@weft/api';
import type { ProxyConfig } from './config';
import { METRICS_CONTENT_TYPE, type MetricsRegistry } from './metrics';
import { runAppProbe, type AppProbes } from './app-probe';
import { endpointsOf } from './proxy-snapshot';
import { ManagedHttpServer } from './server-lifecycle';
import { endpointKey } from './upstream-pool';

export const ADMIN_PORT = 15000;
export const HEALTH_PORT = 15021;
export const METRICS_PORT = 15020;

/** Envoy's server states, as `/ready` reports them. Only `LIVE` is ready. */
export type ServerState = 'LIVE' | 'INITIALIZING' | 'DRAINING';

export interface AdminOptions {
  /** The pod's address (SPEC.md: 127.0.0.1 in a pod, the pod's own address in local mode). */
  readonly address: string;
  /** Default `ADMIN_PORT`; 0 for any free port (tests). */
  readonly port?: number;
  readonly log: Logger;
  /** `GET /config_dump`: serialized as JSON (Maps become objects, RegExps their source). */
  dump(): unknown;
  /** `GET /clusters`: the config whose clusters and endpoints are listed. */
  config(): ProxyConfig;
  /** `GET /ready`: 200 when `LIVE`, else 503. */
  state(): ServerState;
  /** `POST /drain`: called once per request; the response does not wait for a returned promise. */
  drain(): void | Promise<void>;
  /** `POST /quitquitquit`: called after the `OK` response has been sent. */
  quit(): void;
}

/** A server with the shared lifecycle: `listen()`, `address()`, idempotent `close()`/`destroy()`. */
abstract class LocalServer {
  protected readonly server: ManagedHttpServer;

  constructor(
    what: string,
    private readonly bind: { readonly address: string; readonly port: number },
    protected readonly log: Logger,
  ) {
    this.server = new ManagedHttpServer(what, (req, res) => this.serve(req, res), log);
  }

  /** Binds; rejects with a `ListenError` if the port is taken. */
  async listen(): Promise<void> {
    const a = await this.server.listen(this.bind.address, this.bind.port);
    this.log.info('server LISTENING', { address: a.address, port: a.port });
  }

  address(): AddressInfo | undefined {
    return this.server.address();
  }

  /** Graceful: stops accepting, resolves after in-flight requests. Idempotent. */
  close(): Promise<void> {
    return this.server.close();
  }

  /** Idempotent. */
  destroy(): void {
    this.server.destroy();
  }

  private serve(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0]!;
    try {
      this.route(req.method ?? 'GET', path, res);
    } catch (err) {
      this.log.warn('admin handler failed', { path, err });
      if (!res.headersSent) send(res, 500, `${err instanceof Error ? err.message : String(err)}\n`);
      else res.destroy();
    }
  }

  protected abstract route(method: string, path: string, res: ServerResponse): void;
}

/** The admin API. Answers unknown paths with 404 and wrong methods with 405. */
export class AdminServer extends LocalServer {
  constructor(private readonly options: AdminOptions) {
    super('admin', { address: options.address, port: options.port ?? ADMIN_PORT }, options.log.child({ module: 'admin' }));
  }

  protected route(method: string, path: string, res: ServerResponse): void {
    const o = this.options;
    switch (path) {
      case '/config_dump':
        if (!allow(method, 'GET', res)) return;
        return send(res, 200, `${JSON.stringify(o.dump(), jsonReplacer, 2)}\n`, 'application/json');
      case '/clusters':
        if (!allow(method, 'GET', res)) return;
        return send(res, 200, renderClusters(o.config()));
      case '/ready': {
        if (!allow(method, 'GET', res)) return;
        const state = o.state();
        return send(res, state === 'LIVE' ? 200 : 503, `${state}\n`);
      }
      case '/drain':
        if (!allow(method, 'POST', res)) return;
        Promise.resolve()
          .then(() => o.drain())
          .catch((err) => this.log.warn('drain failed', { err }));
        return send(res, 200, 'OK\n');
      case '/quitquitquit':
        if (!allow(method, 'POST', res)) return;
        res.once('finish', () => o.quit());
        return send(res, 200, 'OK\n');
      default:
        return send(res, 404, 'not found\n');
    }
  }
}

export interface HealthOptions {
  readonly address: string;
  /** Default `HEALTH_PORT`; 0 for any free port (tests). */
  readonly port?: number;
  readonly log: Logger;
  /** Whether the sidecar has applied its first complete config (and is not draining). */
  ready(): boolean;
  /** The app's rewritten kubelet probes (`WEFT_APP_PROBES`, app-probe.ts); absent: none. */
  readonly appProbes?: AppProbes;
  /** Where the app listens for probes without a host of their own (POD_IP). */
  readonly appAddress?: string;
}

/**
 * `GET /healthz/ready`: 200 when `ready()` is true, else 503 — the pod's readiness probe. And
 * `GET /app-health/<container>/<livez|readyz|startupz>`: the app's own probe, run by the sidecar
 * (app-probe.ts), 200 or 503 with the reason.
 */
export class HealthServer extends LocalServer {
  constructor(private readonly options: HealthOptions) {
    super('health', { address: options.address, port: options.port ?? HEALTH_PORT }, options.log.child({ module: 'health' }));
  }

  protected route(method: string, path: string, res: ServerResponse): void {
    const probe = this.options.appProbes?.get(path);
    if (probe) {
      // A kubelet probe rewritten to the sidecar: run the app's original probe locally.
      if (!allow(method, 'GET', res)) return;
      void runAppProbe(probe, this.options.appAddress ?? '127.0.0.1').then((r) => {
        if (!r.ok) this.log.info('app probe failed', { path, reason: r.reason });
        if (!res.destroyed) send(res, r.ok ? 200 : 503, `${r.reason}\n`);
      });
      return;
    }
    if (path !== '/healthz/ready') return send(res, 404, 'not found\n');
    if (!allow(method, 'GET', res)) return;
    if (this.options.ready()) send(res, 200, 'ready\n');
    else send(res, 503, 'not ready\n');
  }
}

export interface MetricsOptions {
  readonly address: string;
  /** Default `METRICS_PORT`; 0 for any free port (tests). */
  readonly port?: number;
  readonly log: Logger;
  readonly registry: MetricsRegistry;
}

/** `GET /metrics`: the Prometheus text format, for the scraper (reachable from outside the pod). */
export class MetricsServer extends LocalServer {
  constructor(private readonly options: MetricsOptions) {
    super('metrics', { address: options.address, port: options.port ?? METRICS_PORT }, options.log.child({ module: 'metrics' }));
  }

  protected route(method: string, path: string, res: ServerResponse): void {
    if (path !== '/metrics') return send(res, 404, 'not found\n');
    if (!allow(method, 'GET', res)) return;
    this.options.registry.render().then((text) => send(res, 200, text, METRICS_CONTENT_TYPE), () => send(res, 500, 'metrics unavailable\n'));
  }
}

/**
 * `/clusters` text, one fact per line as Envoy prints it: `cluster::address:port::key::value`
 * (health_flags, weight, target_port), plus `cluster::lb_policy::…` and `cluster::discovery::…`.
 */
export function renderClusters(config: ProxyConfig): string {
  const lines: string[] = [];
  const names = [...config.clusters.keys()].sort();
  for (const name of names) {
    const cluster = config.clusters.get(name)!;
    lines.push(`${name}::discovery::${cluster.discovery}`, `${name}::lb_policy::${cluster.lbPolicy}`);
    for (const e of endpointsOf(config, cluster)) {
      const host = `${name}::${endpointKey(e)}`;
      lines.push(`${host}::health_flags::${e.healthy ? 'healthy' : '/failed_eds_health'}`, `${host}::weight::${e.weight}`);
      if (e.targetPort !== undefined) lines.push(`${host}::target_port::${e.targetPort}`);
    }
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

function allow(method: string, expected: 'GET' | 'POST', res: ServerResponse): boolean {
  if (method === expected || (expected === 'GET' && method === 'HEAD')) return true;
  res.setHeader('allow', expected === 'GET' ? 'GET, HEAD' : 'POST');
  send(res, 405, 'method not allowed\n');
  return false;
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Makes config values JSON-friendly: Maps → objects, Sets → arrays, RegExps → their source. */
function jsonReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Map) return Object.fromEntries(value);
  if (value instanceof Set) return [...value];
  if (value instanceof RegExp) return value.source;
  return value;
}
