/**
 * LEAST_REQUEST: Envoy's default least-request balancer, power of two choices over the calls in
 * flight: of two distinct random endpoints, the one with fewer pending calls. Unequal weights
 * divide the load by the weight ((pending + 1) / weight), where Envoy switches to weighted
 * scheduling with `weight / (pending + 1)^active_request_bias`; with bias 1 (Envoy's default) both
 * prefer the same endpoint, ours by sampling rather than by schedule.
 */
import { p2c, type BalancerContext, type Choice, type LoadBalancer } from './balancer';

const load = (c: Choice): number => (c.stats.pending + 1) / c.weight;

/** A `LoadBalancer` for `LEAST_REQUEST`. `pick` is O(1). */
export function createLeastRequestBalancer(ctx: BalancerContext): LoadBalancer {
  const random = ctx.random;
  return {
    policy: 'LEAST_REQUEST',
    picker: (choices) => ({ pick: () => p2c(choices, random, load) }),
  };
}
