/** RANDOM: each pick independent, probability proportional to weight (binary search over prefix sums). */
import type { BalancerContext, LoadBalancer, Picker } from './balancer';

/** A `LoadBalancer` for `RANDOM`. Stateless; `pick` is O(1) for equal weights, O(log n) otherwise. */
export function createRandomBalancer(ctx: BalancerContext): LoadBalancer {
  const random = ctx.random;
  return {
    policy: 'RANDOM',
    picker(choices): Picker {
      const n = choices.length;
      if (choices.every((c) => c.weight === choices[0]!.weight)) {
        return { pick: () => choices[Math.min(n - 1, Math.floor(random() * n))]! };
      }
      let acc = 0;
      const sums = choices.map((c) => (acc += c.weight));
      const total = acc;
      return {
        pick() {
          const r = random() * total;
          // First index whose running total exceeds r.
          let lo = 0;
          let hi = n - 1;
          while (lo < hi) {
            const mid = (lo + hi) >> 1;
            if (sums[mid]! > r) hi = mid;
            else lo = mid + 1;
          }
          return choices[lo]!;
        },
      };
    },
  };
}
