/**
 * PEAK_EWMA: power of two choices over a peak-sensitive, exponentially weighted moving average of
 * each endpoint's latency, as Linkerd (tower's `PeakEwma`) and Finagle balance. An endpoint's cost
 * is its latency estimate × (calls in flight + 1) ÷ weight; of two distinct random endpoints the
 * cheaper one wins.
 *
 * - **Peak:** a latency above the estimate replaces it at once; lower ones blend in with weight
 *   `1 − e^(−Δt/decay)`, so a slowdown is reacted to immediately and a recovery trusted slowly.
 * - **Decay toward zero:** an idle endpoint's estimate shrinks by `e^(−Δt/decay)`, so an endpoint
 *   that was slow is probed again after a while instead of being starved forever.
 * - **New endpoints** start at `defaultRtt` (30 ms), decaying from when they appeared.
 * - **Failures** (no connection, reset, timeout) count as at least `defaultRtt`, so an endpoint
 *   that fails fast does not look attractive; ejecting it is outlier detection's job.
 *
 * Estimates live in `EndpointStats`, so they survive config swaps for endpoints that remain.
 */
import { p2c, type BalancerContext, type Choice, type LoadBalancer } from './balancer';

/** Linkerd's defaults. */
export const DEFAULT_EWMA_DECAY_MS = 10_000;
export const DEFAULT_EWMA_RTT_MS = 30;

/** A `LoadBalancer` for `PEAK_EWMA`. `pick` is O(1): two estimates, two `Math.exp`. */
export function createPeakEwmaBalancer(ctx: BalancerContext): LoadBalancer {
  const { random, now } = ctx;
  const decayMs = ctx.cluster.peakEwma?.decayMs ?? DEFAULT_EWMA_DECAY_MS;
  const defaultRttMs = ctx.cluster.peakEwma?.defaultRttMs ?? DEFAULT_EWMA_RTT_MS;

  const estimate = (c: Choice, at: number): number => {
    const s = c.stats;
    // Never measured: the default, decaying from when the endpoint appeared.
    const rtt = s.rttMs < 0 ? defaultRttMs : s.rttMs;
    return rtt * Math.exp(-Math.max(0, at - s.rttAt) / decayMs);
  };

  return {
    policy: 'PEAK_EWMA',
    picker(choices) {
      return {
        pick() {
          const t = now();
          return p2c(choices, random, (c) => (estimate(c, t) * (c.stats.pending + 1)) / c.weight);
        },
      };
    },
    onResult(choice, elapsedMs, result) {
      if (result.kind === 'cancelled') return;
      const rtt = result.kind === 'response' ? elapsedMs : Math.max(elapsedMs, defaultRttMs);
      const s = choice.stats;
      const t = now();
      if (s.rttMs < 0) s.rttMs = defaultRttMs;
      const w = Math.exp(-Math.max(0, t - s.rttAt) / decayMs);
      const decayed = s.rttMs * w;
      s.rttMs = rtt > decayed ? rtt : decayed + rtt * (1 - w);
      s.rttAt = t;
    },
  };
}
