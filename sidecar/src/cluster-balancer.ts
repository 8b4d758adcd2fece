/**
 * A cluster's upstream state that outlives configs, and the per-config pickers built from it:
 *
 *   ClusterBalancers (one per sidecar, with its UpstreamPool)
 *     └ ClusterBalancer (one per cluster name): endpoint stats, LB policy, outlier detector, pool limits
 *         └ ClusterPicker (one per config): the config's healthy endpoints → `pick()` on the request path
 *
 * `pick()` returns an `UpstreamPick`, a handle the forward path completes with the call's outcome;
 * that is how balancers learn latency and load and how outlier detection sees failures. Pickers
 * skip ejected endpoints; when every endpoint is ejected they use them all (fail open, Envoy's
 * panic mode), so outlier detection can never take a whole cluster down.
 */
import { createBalancer, type CallResult, type Choice, type EndpointStats, type LoadBalancer, type Picker } from './balancer';
import type { Cluster, Endpoint } from './config';
import { OutlierDetector } from './outlier-detector';
import { DEFAULT_CIRCUIT_BREAKERS, PoolLimits } from './pool-limits';
import type { Http1Endpoint } from './upstream-http1';
import { endpointKey, type UpstreamPool } from './upstream-pool';

/** One picked endpoint for one upstream call. */
export interface UpstreamPick {
  readonly endpoint: Endpoint;
  /** The endpoint's pooled HTTP/1.1 connections, honouring the cluster's `maxRequestsPerConnection`. */
  readonly upstream: Http1Endpoint;
  /**
   * Reports how the call ended; call exactly once (later calls are ignored). Latency is measured
   * from the pick to this call, so report as soon as the outcome is known (response headers).
   */
  done(result: CallResult): void;
}

export interface ClusterBalancersOptions {
  readonly random?: () => number;
  /** Monotonic ms for latency (default `performance.now`). */
  readonly now?: () => number;
  /** Wall-clock ms for ejection times (default `Date.now`, which `mock.timers` can drive). */
  readonly clock?: () => number;
}

/** Every cluster's state for one sidecar. Synchronous; `close()` stops outlier timers. */
export class ClusterBalancers {
  private readonly clusters = new Map<string, ClusterBalancer>();
  readonly random: () => number;
  readonly now: () => number;
  readonly clock: () => number;

  constructor(
    readonly pool: UpstreamPool,
    options: ClusterBalancersOptions = {},
  ) {
    this.random = options.random ?? Math.random;
    this.now = options.now ?? (() => performance.now());
    this.clock = options.clock ?? (() => Date.now());
    pool.onClose(() => this.close());
  }

  /** The state of cluster `name`, if any config had it. */
  get(name: string): ClusterBalancer | undefined {
    return this.clusters.get(name);
  }

  /** The picker for `cluster` with `endpoints` (one config's view), creating the cluster's state on first sight. */
  picker(cluster: Cluster, endpoints: readonly Endpoint[]): ClusterPicker {
    let cb = this.clusters.get(cluster.name);
    if (!cb) {
      cb = new ClusterBalancer(cluster.name, this);
      this.clusters.set(cluster.name, cb);
    }
    return cb.update(cluster, endpoints);
  }

  /** Forgets clusters not in `names` (their in-flight calls still complete). */
  retain(names: Iterable<string>): void {
    const keep = new Set(names);
    for (const [name, cb] of this.clusters) {
      if (keep.has(name)) continue;
      cb.close();
      this.clusters.delete(name);
    }
  }

  close(): void {
    this.retain([]);
  }
}

/** One cluster's lasting state. */
export class ClusterBalancer {
  private readonly stats = new Map<string, EndpointStats>();
  private policy: LoadBalancer | undefined;
  private policyKey = '';
  outlier: OutlierDetector | undefined;
  readonly limits = new PoolLimits();

  constructor(
    readonly name: string,
    private readonly owner: ClusterBalancers,
  ) {}

  /** Applies a config's view of the cluster; returns the picker for that config. */
  update(cluster: Cluster, endpoints: readonly Endpoint[]): ClusterPicker {
    const key = `${cluster.lbPolicy}|${cluster.peakEwma?.decayMs}|${cluster.peakEwma?.defaultRttMs}`;
    if (!this.policy || key !== this.policyKey) {
      this.policy = createBalancer(cluster.lbPolicy, { random: this.owner.random, now: this.owner.now, cluster });
      this.policyKey = key;
    }
    const choices: Choice[] = [];
    const seen = new Set<string>();
    for (const e of endpoints) {
      if (!e.healthy) continue;
      const k = endpointKey(e);
      seen.add(k);
      let s = this.stats.get(k);
      if (!s) {
        s = { key: k, pending: 0, rttMs: -1, rttAt: this.owner.now() };
        this.stats.set(k, s);
      }
      // Envoy rejects weight 0; an unset or invalid weight counts as 1 rather than starving the host.
      const weight = Number.isFinite(e.weight) && e.weight >= 1 ? Math.floor(e.weight) : 1;
      choices.push({ endpoint: e, weight, stats: s });
    }
    for (const k of this.stats.keys()) if (!seen.has(k)) this.stats.delete(k);

    if (cluster.outlierDetection) {
      if (this.outlier) this.outlier.update(cluster.outlierDetection);
      else this.outlier = new OutlierDetector(cluster.outlierDetection, this.owner.clock);
      this.outlier.setEndpoints(seen);
    } else if (this.outlier) {
      this.outlier.close();
      this.outlier = undefined;
    }
    this.limits.update(cluster.circuitBreakers ?? DEFAULT_CIRCUIT_BREAKERS);
    return new ClusterPicker(this, this.policy, choices, cluster.maxRequestsPerConnection ?? 0);
  }

  /** Stats of the endpoint `address:port`, while the cluster has it. */
  endpointStats(key: string): Readonly<EndpointStats> | undefined {
    return this.stats.get(key);
  }

  close(): void {
    this.outlier?.close();
  }

  /** @internal */
  get pool(): UpstreamPool {
    return this.owner.pool;
  }
  /** @internal */
  get now(): () => number {
    return this.owner.now;
  }
}

/**
 * The request path's view of one cluster in one config. `pick()` is synchronous and cheap: the
 * policy's picker, rebuilt only when the set of ejected endpoints changes.
 */
export class ClusterPicker {
  private inner: Picker | undefined;
  private builtFor = -1;

  constructor(
    private readonly owner: ClusterBalancer,
    private readonly policy: LoadBalancer,
    /** Healthy endpoints of this config, in config order. */
    readonly choices: readonly Choice[],
    private readonly maxRequestsPerConnection: number,
  ) {}

  /** A healthy endpoint for one call, or `undefined` when the cluster has none. */
  pick(): UpstreamPick | undefined {
    if (this.choices.length === 0) return undefined;
    const od = this.owner.outlier;
    const version = od ? od.version : 0;
    if (!this.inner || version !== this.builtFor) {
      let available = od ? this.choices.filter((c) => !od.isEjected(c.stats.key)) : this.choices;
      // Panic: every endpoint ejected. Failing open beats failing every request.
      if (available.length === 0) available = this.choices;
      this.inner = this.policy.picker(available);
      this.builtFor = version;
    }
    const choice = this.inner.pick();
    choice.stats.pending++;
    const owner = this.owner;
    // The clock is read only for a policy that learns latency (peak EWMA).
    const started = this.policy.onResult ? owner.now() : 0;
    return new Pick(choice, owner.pool.endpointFor(choice.endpoint, this.maxRequestsPerConnection), owner, this.policy, started);
  }
}

/** The handle of one pick (a class, not an object with a closure: one per request). */
class Pick implements UpstreamPick {
  readonly endpoint: Endpoint;
  private open = true;

  constructor(
    private readonly choice: Choice,
    readonly upstream: Http1Endpoint,
    private readonly owner: ClusterBalancer,
    private readonly policy: LoadBalancer,
    private readonly started: number,
  ) {
    this.endpoint = choice.endpoint;
  }

  done(result: CallResult): void {
    if (!this.open) return;
    this.open = false;
    const stats = this.choice.stats;
    stats.pending--;
    const owner = this.owner;
    if (this.policy.onResult) this.policy.onResult(this.choice, owner.now() - this.started, result);
    owner.outlier?.record(stats.key, result);
  }
}
