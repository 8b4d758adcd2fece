/**
 * ROUND_ROBIN: equal weights rotate in order; unequal weights use smooth weighted round robin
 * (nginx), which spreads a heavy endpoint's turns out instead of bursting them. Each new list
 * starts at a random position, as Envoy does, so frequent config pushes do not all favour the
 * first endpoint.
 */
import type { Endpoint } from './config';
import type { Balancer } from './balancer';
import { endpointSet, type EndpointSet } from './endpoint-set';

/** Warm-up steps are bounded so preparing a list with huge weights stays cheap. */
const MAX_WARMUP = 256;

/** A `Balancer` for `ROUND_ROBIN`. `pick` is O(1) for equal weights, O(n) otherwise. */
export function createRoundRobinBalancer(random: () => number): Balancer {
  let list: readonly Endpoint[] | undefined;
  let set: EndpointSet | undefined;
  let next = 0;
  let current: number[] = [];

  const smoothStep = (s: EndpointSet): number => {
    let best = 0;
    for (let i = 0; i < s.weights.length; i++) {
      current[i]! += s.weights[i]!;
      if (current[i]! > current[best]!) best = i;
    }
    current[best]! -= s.totalWeight;
    return best;
  };

  const prepare = (endpoints: readonly Endpoint[]): EndpointSet => {
    const s = endpointSet(endpoints);
    list = endpoints;
    set = s;
    current = s.weights.map(() => 0);
    const n = s.endpoints.length;
    if (s.uniform) {
      next = n > 0 ? Math.floor(random() * n) : 0;
    } else {
      const steps = Math.floor(random() * Math.min(s.totalWeight, MAX_WARMUP));
      for (let i = 0; i < steps; i++) smoothStep(s);
    }
    return s;
  };

  return {
    policy: 'ROUND_ROBIN',
    pick(endpoints) {
      const s = endpoints === list && set ? set : prepare(endpoints);
      const n = s.endpoints.length;
      if (n === 0) return undefined;
      if (s.uniform) {
        const i = next % n;
        next = (i + 1) % n;
        return s.endpoints[i];
      }
      return s.endpoints[smoothStep(s)];
    },
  };
}
