/**
 * The healthy, weighted view of an endpoint list that every balancer starts from. Built once per
 * list (lists in a `ProxyConfig` are immutable, so identity is a safe cache key).
 */
import type { Endpoint } from './config';

export interface EndpointSet {
  /** Healthy endpoints, in config order. */
  readonly endpoints: readonly Endpoint[];
  /** `weights[i]` belongs to `endpoints[i]`; always ≥ 1 (Envoy's minimum weight). */
  readonly weights: readonly number[];
  readonly totalWeight: number;
  /** All weights equal: balancers may skip weighting. */
  readonly uniform: boolean;
}

const cache = new WeakMap<readonly Endpoint[], EndpointSet>();

/** The healthy subset of `list` with normalized weights. Synchronous, memoized by list identity. */
export function endpointSet(list: readonly Endpoint[]): EndpointSet {
  let set = cache.get(list);
  if (!set) {
    const endpoints = list.filter((e) => e.healthy);
    // Envoy rejects weight 0; an unset or invalid weight counts as 1 rather than starving the host.
    const weights = endpoints.map((e) => (Number.isFinite(e.weight) && e.weight >= 1 ? Math.floor(e.weight) : 1));
    const totalWeight = weights.reduce((a, b) => a + b, 0);
    set = { endpoints, weights, totalWeight, uniform: weights.every((w) => w === weights[0]) };
    cache.set(list, set);
  }
  return set;
}
