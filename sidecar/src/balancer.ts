/**
 * Load balancing, in grpc-js's split: a **policy** (`LoadBalancer`) per cluster owns state that
 * outlives configs (per-endpoint statistics, rotation), and builds a **picker** for each endpoint
 * list it is given; the picker is what the request path calls, and it is cheap. Policies register
 * by name (`registerBalancer`), as grpc-js's do.
 *
 * Outcomes flow back through `EndpointStats`: the cluster (`cluster-balancer.ts`) counts a call as
 * pending when it is picked and calls `onResult` when it ends, so latency- and load-aware
 * policies (peak EWMA, least request) learn from every request.
 */
import type { Cluster, Endpoint } from './config';
import { createRoundRobinBalancer } from './balancer-round-robin';
import { createRandomBalancer } from './balancer-random';
import { createLeastRequestBalancer } from './balancer-least-request';
import { createPeakEwmaBalancer } from './balancer-ewma';

/**
 * Live statistics of one endpoint of one cluster, shared by every config that keeps the endpoint
 * (keyed by cluster name and `address:port`). Mutated only by the cluster balancer and policies.
 */
export interface EndpointStats {
  /** `address:port` (see `endpointKey`). */
  readonly key: string;
  /** Calls picked and not yet finished. */
  pending: number;
  /** Peak-EWMA round-trip estimate in ms (negative: never measured), and when (`now()`) it was last updated or created. */
  rttMs: number;
  rttAt: number;
}

/** One endpoint as a picker sees it: the config's endpoint, its weight (≥ 1) and its live stats. */
export interface Choice {
  readonly endpoint: Endpoint;
  readonly weight: number;
  readonly stats: EndpointStats;
}

/** How an upstream call ended, as the forward path reports it. */
export type CallResult =
  | { readonly kind: 'response'; readonly status: number }
  /** No connection (refused, unreachable, connect timeout). */
  | { readonly kind: 'connect-failure' }
  /** Connected, then reset before the response completed. */
  | { readonly kind: 'reset' }
  /** The route (or per-try) timeout elapsed. */
  | { readonly kind: 'timeout' }
  /** Failed, cause not told (an attempt given up for a retry): counted like a 503. */
  | { readonly kind: 'failed' }
  /** Abandoned by the client or by the proxy (a retry or hedge won elsewhere): says nothing about the endpoint. */
  | { readonly kind: 'cancelled' };

/** Built for one endpoint list; `pick` is synchronous, never throws, and is O(1) or O(log n) for the built-in policies. */
export interface Picker {
  pick(): Choice;
}

/** A policy instance for one cluster; lives as long as the cluster does, across configs. */
export interface LoadBalancer {
  /** The registered name that built it. */
  readonly policy: string;
  /** A picker over `choices` (never empty; healthy, not ejected, in config order). */
  picker(choices: readonly Choice[]): Picker;
  /**
   * A call to `choice` ended after `elapsedMs` (its `pending` count is already decremented).
   * Optional: policies that do not learn from outcomes leave it out.
   */
  onResult?(choice: Choice, elapsedMs: number, result: CallResult): void;
}

export interface BalancerContext {
  /** Uniform in [0, 1): the only randomness a policy may use. */
  readonly random: () => number;
  /** Monotonic milliseconds. */
  readonly now: () => number;
  /** The cluster as configured when the policy was created (policy-specific settings). */
  readonly cluster: Cluster;
}

export type BalancerFactory = (ctx: BalancerContext) => LoadBalancer;

const registry = new Map<string, BalancerFactory>([
  ['ROUND_ROBIN', createRoundRobinBalancer],
  ['RANDOM', createRandomBalancer],
  ['LEAST_REQUEST', createLeastRequestBalancer],
  ['PEAK_EWMA', createPeakEwmaBalancer],
]);

/** Adds or replaces the policy `name`. Later `createBalancer(name)` calls use it. */
export function registerBalancer(name: string, factory: BalancerFactory): void {
  registry.set(name, factory);
}

/** Whether `name` has a registered implementation (others fall back, see `createBalancer`). */
export function hasBalancer(name: string): boolean {
  return registry.has(name);
}

/**
 * A new policy instance named `ctx.cluster.lbPolicy` (or `policy`). An unknown name falls back to
 * `ROUND_ROBIN`, Envoy's default, so a valid config never fails on the request path.
 */
export function createBalancer(policy: string, ctx: BalancerContext): LoadBalancer {
  const factory = registry.get(policy) ?? registry.get('ROUND_ROBIN')!;
  return factory(ctx);
}

/**
 * Power of two choices: of two distinct random members of `choices` (length ≥ 1), the one `cost`
 * rates lower (the first drawn on a tie). With a single choice, that one.
 */
export function p2c(choices: readonly Choice[], random: () => number, cost: (c: Choice) => number): Choice {
  const n = choices.length;
  if (n === 1) return choices[0]!;
  const a = Math.min(n - 1, Math.floor(random() * n));
  let b = Math.min(n - 2, Math.floor(random() * (n - 1)));
  if (b >= a) b++;
  const ca = choices[a]!;
  const cb = choices[b]!;
  return cost(cb) < cost(ca) ? cb : ca;
}
