/**
 * Reconciles running proxy listeners with each new `ProxyConfig` (Envoy's listener manager):
 * starts new ones, rebinds moved ones, drains removed ones, updates the rest in place, and trims
 * the upstream pool to the endpoints the config still names.
 */
import type { Logger } from '@weft/api';
import type { HttpListener, ProxyConfig } from './config';
import { HttpProxyListener, type ProxyListenerDeps } from './listener-http';
import { retainUpstreams, snapshotOf } from './proxy-snapshot';

/**
 * Owns the `HttpProxyListener`s (not the pool: close the manager first, then the pool). The caller
 * makes `current()` return a config before passing that config to `apply`.
 */
export class ListenerManager {
  private readonly listeners = new Map<string, HttpProxyListener>();
  /** Removed or rebound listeners still draining their in-flight requests. */
  private readonly draining = new Set<HttpProxyListener>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly log: Logger;

  constructor(
    private readonly current: () => ProxyConfig,
    private readonly deps: ProxyListenerDeps,
  ) {
    this.log = deps.log.child({ module: 'listener-manager' });
  }

  /**
   * Brings the listeners in line with `config.listeners`. Applies run one at a time, in call order.
   * Resolves (never rejects) with one line per problem, e.g. a port that could not be bound; a
   * listener that failed to bind is not kept, so the next `apply` tries again. Removed listeners
   * stop accepting at once and drain in the background; in-flight requests are never cut.
   */
  apply(config: ProxyConfig): Promise<string[]> {
    const run = this.queue.then(() => this.reconcile(config));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The running listener called `name`. */
  get(name: string): HttpProxyListener | undefined {
    return this.listeners.get(name);
  }

  /** Names of the running listeners. */
  names(): string[] {
    return [...this.listeners.keys()];
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
    // Compile routes and balancers now, so the first request on the new config does not pay.
    snapshotOf(config, this.deps.pool);
    const toStart: HttpListener[] = [];

    for (const [name, running] of this.listeners) {
      const spec = config.listeners.get(name);
      if (!spec) {
        this.log.info('listener removed', { listener: name });
        this.listeners.delete(name);
        this.retire(running);
      } else if (spec.address !== running.spec.address || spec.port !== running.spec.port) {
        this.log.info('listener rebinding', { listener: name, from: `${running.spec.address}:${running.spec.port}`, to: `${spec.address}:${spec.port}` });
        this.listeners.delete(name);
        // close() releases the old socket synchronously, so the new bind cannot collide with it.
        this.retire(running);
        toStart.push(spec);
      } else if (spec !== running.spec) {
        running.update(spec);
      }
    }
    for (const [name, spec] of config.listeners) {
      if (!this.listeners.has(name) && !toStart.includes(spec)) toStart.push(spec);
    }

    const results = await Promise.all(toStart.map((spec) => this.start(spec)));
    // Agents and cluster state (balancer stats, ejections) of what this config no longer has.
    retainUpstreams(this.deps.pool, config);
    return results.filter((r): r is string => r !== undefined);
  }

  /** Starts a listener for `spec`; resolves with an error line on failure. */
  private async start(spec: HttpListener): Promise<string | undefined> {
    const listener = new HttpProxyListener(spec, this.current, this.deps);
    try {
      await listener.listen();
    } catch (err) {
      listener.destroy();
      const message = err instanceof Error ? err.message : String(err);
      this.log.warn('listener failed to start', { listener: spec.name, err: message });
      return message;
    }
    if (this.closed) {
      listener.destroy();
      return undefined;
    }
    this.listeners.set(spec.name, listener);
    return undefined;
  }

  private retire(listener: HttpProxyListener): void {
    this.draining.add(listener);
    void listener.close().then(() => this.draining.delete(listener));
  }
}
