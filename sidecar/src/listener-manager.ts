/**
 * Reconciles running proxy listeners with each new `ProxyConfig` (Envoy's listener manager):
 * starts new ones, rebinds moved ones, drains removed ones, updates the rest in place, and trims
 * the upstream pool to the endpoints the config still names. HTTP listeners (`config.listeners`,
 * listener-http.ts, with their TCP filter chains) and TCP-only listeners (`config.tcpListeners`,
 * listener-tcp.ts) are reconciled together; a name that changes kind is replaced.
 */
import type { Logger } from '@weft/api';
import type { HttpListener, ProxyConfig, TcpListener } from './config';
import { ConnectionDispatcher, type DispatchDeps } from './listener-dispatch';
import type { Counter } from './metrics';
import { validationNamesOf } from './tls-contexts';
import { withDecryptedDestination } from './tls-terminate';
import { HttpProxyListener, type ProxyListenerDeps } from './listener-http';
import { TcpProxyListener } from './listener-tcp';
import { retainUpstreams, snapshotOf } from './proxy-snapshot';

type Spec = { readonly kind: 'http'; readonly spec: HttpListener } | { readonly kind: 'tcp'; readonly spec: TcpListener };
type Running = HttpProxyListener | TcpProxyListener;

/**
 * Owns the listeners (not the pool: close the manager first, then the pool). The caller makes
 * `current()` return a config before passing that config to `apply`.
 */
export class ListenerManager {
  private readonly listeners = new Map<string, Running>();
  /** Removed or rebound listeners still draining their in-flight requests and connections. */
  private readonly draining = new Set<Running>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly log: Logger;
  private readonly deps: ManagerDeps;

  constructor(
    private readonly current: () => ProxyConfig,
    deps: ManagerDeps,
  ) {
    this.log = deps.log.child({ module: 'listener-manager' });
    // Every HTTP listener sorts its connections onto filter chains first (listener-dispatch.ts).
    // A stream decrypted from mesh mTLS answers for its connection's original destination (capture mode).
    const od = deps.originalDestination ? withDecryptedDestination(deps.originalDestination) : undefined;
    this.deps = { ...deps, ...(od ? { originalDestination: od } : {}), connections: (spec) => new ConnectionDispatcher(spec, { ...dispatchDeps(deps), current }) };
  }

  /**
   * Brings the listeners in line with `config.listeners` and `config.tcpListeners`. Applies run
   * one at a time, in call order. Resolves (never rejects) with one line per problem, e.g. a port
   * that could not be bound; a listener that failed to bind is not kept, so the next `apply` tries
   * again. Removed listeners stop accepting at once and drain in the background; in-flight
   * requests and open TCP connections are never cut.
   */
  apply(config: ProxyConfig): Promise<string[]> {
    const run = this.queue.then(() => this.reconcile(config));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The running HTTP listener called `name`. */
  get(name: string): HttpProxyListener | undefined {
    const l = this.listeners.get(name);
    return l instanceof HttpProxyListener ? l : undefined;
  }

  /** The running TCP-only listener called `name`. */
  getTcp(name: string): TcpProxyListener | undefined {
    const l = this.listeners.get(name);
    return l instanceof TcpProxyListener ? l : undefined;
  }

  /** Names of the running listeners. */
  names(): string[] {
    return [...this.listeners.keys()];
  }

  /** Every listener keeps accepting, but HTTP/1 connections close after each response (draining). */
  softDrain(): void {
    for (const l of this.listeners.values()) l.softDrain();
  }

  /** `performance.now()` of the last connection any listener accepted (0: none). */
  lastAcceptAt(): number {
    let last = 0;
    for (const l of this.listeners.values()) last = Math.max(last, l.lastAcceptAt);
    return last;
  }

  /** Stops every listener gracefully; resolves when all in-flight requests finished. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    await this.queue;
    for (const l of this.listeners.values()) this.retire(l);
    this.listeners.clear();
    await Promise.all([...this.draining].map((l) => l.close()));
  }

  /** Aborts every listener and connection now. Idempotent. */
  destroy(): void {
    this.closed = true;
    for (const l of this.listeners.values()) l.destroy();
    for (const l of this.draining) l.destroy();
    this.listeners.clear();
    this.draining.clear();
  }

  private async reconcile(config: ProxyConfig): Promise<string[]> {
    if (this.closed) return ['listener manager is closed'];
    // Compile routes and balancers now, so the first request on the new config does not pay;
    // likewise the TLS contexts its chains and clusters use.
    snapshotOf(config, this.deps.pool);
    this.deps.pool.tls?.prepare(validationNamesOf(config));
    const specs = new Map<string, Spec>();
    for (const [name, spec] of config.listeners) specs.set(name, { kind: 'http', spec });
    for (const [name, spec] of config.tcpListeners ?? []) specs.set(name, { kind: 'tcp', spec });
    const toStart: Spec[] = [];

    for (const [name, running] of this.listeners) {
      const want = specs.get(name);
      const kind = running instanceof HttpProxyListener ? 'http' : 'tcp';
      if (!want) {
        this.log.info('listener removed', { listener: name });
        this.listeners.delete(name);
        this.retire(running);
      } else if (want.kind !== kind || want.spec.address !== running.spec.address || want.spec.port !== running.spec.port) {
        this.log.info('listener rebinding', { listener: name, from: `${running.spec.address}:${running.spec.port}`, to: `${want.spec.address}:${want.spec.port}`, kind: want.kind });
        this.listeners.delete(name);
        // close() releases the old socket synchronously, so the new bind cannot collide with it.
        this.retire(running);
        toStart.push(want);
      } else if (want.spec !== running.spec) {
        if (running instanceof HttpProxyListener) running.update(want.spec as HttpListener);
        else running.update(want.spec as TcpListener);
      }
    }
    for (const [name, want] of specs) {
      if (!this.listeners.has(name) && !toStart.some((s) => s.spec === want.spec)) toStart.push(want);
    }

    const results = await Promise.all(toStart.map((spec) => this.start(spec)));
    // Agents and cluster state (balancer stats, ejections) of what this config no longer has.
    retainUpstreams(this.deps.pool, config);
    return results.filter((r): r is string => r !== undefined);
  }

  /** Starts a listener for `want`; resolves with an error line on failure. */
  private async start(want: Spec): Promise<string | undefined> {
    const listener: Running = want.kind === 'http'
      ? new HttpProxyListener(want.spec, this.current, this.deps)
      : new TcpProxyListener(want.spec, this.current, dispatchDeps(this.deps));
    try {
      await listener.listen();
    } catch (err) {
      listener.destroy();
      const message = err instanceof Error ? err.message : String(err);
      this.log.warn('listener failed to start', { listener: want.spec.name, err: message });
      return message;
    }
    if (this.closed) {
      listener.destroy();
      return undefined;
    }
    this.listeners.set(want.spec.name, listener);
    return undefined;
  }

  private retire(listener: Running): void {
    this.draining.add(listener);
    void listener.close().then(() => this.draining.delete(listener));
  }
}

function dispatchDeps(deps: ManagerDeps): Omit<DispatchDeps, 'current'> {
  return {
    log: deps.log,
    pool: deps.pool,
    ...(deps.originalDestination ? { originalDestination: deps.originalDestination } : {}),
    ...(deps.authzDenials ? { authzDenials: deps.authzDenials } : {}),
    ...(deps.pool.tls ? { tls: deps.pool.tls } : {}),
    ...(deps.tlsRefusals ? { tlsRefusals: deps.tlsRefusals } : {}),
    ...(deps.requestMetrics ? { requestMetrics: deps.requestMetrics } : {}),
  };
}

/** What the manager needs: the listeners' deps, plus the mesh mTLS refusal counter (listener-dispatch.ts). */
export type ManagerDeps = ProxyListenerDeps & { readonly tlsRefusals?: Counter<'reason'> };
