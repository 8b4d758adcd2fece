/** Traffic splitting for a route whose action is `weighted` (Envoy's `weighted_clusters`). */
import type { RouteAction } from './config';

export type WeightedAction = Extract<RouteAction, { kind: 'weighted' }>;

/**
 * Picks a cluster name with probability weight / (sum of weights); clusters of weight 0 are never
 * picked. `random` must be uniform in [0, 1). The sum is recomputed from the entries, so a stale
 * `totalWeight` cannot send traffic nowhere. `undefined` only when no cluster has a positive weight.
 * Synchronous, no state.
 */
export function pickWeightedCluster(action: WeightedAction, random: () => number = Math.random): string | undefined {
  let total = 0;
  for (const c of action.clusters) if (c.weight > 0) total += c.weight;
  if (total <= 0) return undefined;
  let r = random() * total;
  let last: string | undefined;
  for (const c of action.clusters) {
    if (c.weight <= 0) continue;
    last = c.cluster;
    if (r < c.weight) return c.cluster;
    r -= c.weight;
  }
  // Floating point can leave r a hair above the final weight.
  return last;
}
