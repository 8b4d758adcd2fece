/** RANDOM: each pick independent, probability proportional to weight (binary search over prefix sums). */
import type { Endpoint } from './config';
import type { Balancer } from './balancer';
import { endpointSet } from './endpoint-set';

const prefixSums = new WeakMap<readonly Endpoint[], readonly number[]>();

/** A `Balancer` for `RANDOM`. Stateless apart from a per-list memo; `pick` is O(log n). */
export function createRandomBalancer(random: () => number): Balancer {
  return {
    policy: 'RANDOM',
    pick(endpoints) {
      const s = endpointSet(endpoints);
      const n = s.endpoints.length;
      if (n === 0) return undefined;
      if (s.uniform) return s.endpoints[Math.min(n - 1, Math.floor(random() * n))];
      let sums = prefixSums.get(endpoints);
      if (!sums) {
        let acc = 0;
        sums = s.weights.map((w) => (acc += w));
        prefixSums.set(endpoints, sums);
      }
      const r = random() * s.totalWeight;
      // First index whose running total exceeds r.
      let lo = 0;
      let hi = n - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (sums[mid]! > r) hi = mid;
        else lo = mid + 1;
      }
      return s.endpoints[lo];
    },
  };
}
