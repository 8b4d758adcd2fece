/**
 * ROUND_ROBIN: equal weights rotate in order; unequal weights use smooth weighted round robin
 * (nginx), which spreads a heavy endpoint's turns out instead of bursting them. Each new list
 * starts at a random position, as Envoy does, so frequent config pushes do not all favour the
 * first endpoint.
 */
import type { BalancerContext, Choice, LoadBalancer, Picker } from './balancer';

/** Warm-up steps are bounded so preparing a list with huge weights stays cheap. */
const MAX_WARMUP = 256;

/** A `LoadBalancer` for `ROUND_ROBIN`. `pick` is O(1) for equal weights, O(n) otherwise. */
export function createRoundRobinBalancer(ctx: BalancerContext): LoadBalancer {
  return {
    policy: 'ROUND_ROBIN',
    picker: (choices) => roundRobinPicker(choices, ctx.random),
  };
}

export function roundRobinPicker(choices: readonly Choice[], random: () => number): Picker {
  const n = choices.length;
  const uniform = choices.every((c) => c.weight === choices[0]!.weight);
  if (uniform) {
    let next = Math.floor(random() * n);
    return {
      pick() {
        const i = next % n;
        next = (i + 1) % n;
        return choices[i]!;
      },
    };
  }
  const weights = choices.map((c) => c.weight);
  const total = weights.reduce((a, b) => a + b, 0);
  const current = weights.map(() => 0);
  const step = (): number => {
    let best = 0;
    for (let i = 0; i < n; i++) {
      current[i]! += weights[i]!;
      if (current[i]! > current[best]!) best = i;
    }
    current[best]! -= total;
    return best;
  };
  const warmup = Math.floor(random() * Math.min(total, MAX_WARMUP));
  for (let i = 0; i < warmup; i++) step();
  return { pick: () => choices[step()]! };
}
