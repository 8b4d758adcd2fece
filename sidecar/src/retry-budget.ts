/**
 * Retry budgets, as Linkerd's: retries may add at most `percent` of the requests seen over the
 * last 10 s, plus `minRetriesPerSecond` (so a quiet destination can still retry). The minimum is a
 * token bucket refilled at that rate and holding at most one second's worth, so what reaches a
 * failing upstream stays within (1 + percent/100) × the client's rate + minRetriesPerSecond
 * (FIELD-NOTES 8), with no burst at startup beyond one second's minimum.
 *
 * Budgets are the one piece of retry state that outlives a request and a config: `RetryBudgets`
 * holds one per key (a route table's virtual host: every route of one destination draws on the
 * same budget) and is shared by all listeners, like the upstream pool.
 */
import type { RetryBudgetSpec } from './config';
import type { SkipReason } from './retry-policy';

const WINDOW_S = 10;

/** One destination's budget. Synchronous; `now` is in milliseconds (monotonic). */
export class RetryBudget {
  private readonly requests = new Float64Array(WINDOW_S);
  private readonly ratioRetries = new Float64Array(WINDOW_S);
  private second: number;
  private tokens: number;
  private tokensAt: number;

  constructor(
    private spec: { readonly percent: number; readonly minRetriesPerSecond: number },
    private readonly now: () => number = () => performance.now(),
  ) {
    const t = now();
    this.second = Math.floor(t / 1000);
    this.tokens = spec.minRetriesPerSecond;
    this.tokensAt = t;
  }

  /** Takes new limits; what was counted stays. */
  update(spec: { readonly percent: number; readonly minRetriesPerSecond: number }): void {
    if (spec.percent === this.spec.percent && spec.minRetriesPerSecond === this.spec.minRetriesPerSecond) return;
    this.spec = spec;
    this.tokens = Math.min(this.tokens, spec.minRetriesPerSecond);
  }

  /** Counts one request (its first attempt). */
  deposit(): void {
    this.requests[this.roll()]! += 1;
  }

  /** Takes one retry if the budget has room; false otherwise (nothing taken). */
  withdraw(): boolean {
    const i = this.roll();
    let requests = 0;
    let retries = 0;
    for (let k = 0; k < WINDOW_S; k++) {
      requests += this.requests[k]!;
      retries += this.ratioRetries[k]!;
    }
    if (retries + 1 <= (requests * this.spec.percent) / 100) {
      this.ratioRetries[i]! += 1;
      return true;
    }
    const t = this.now();
    const rate = this.spec.minRetriesPerSecond;
    this.tokens = Math.min(rate, this.tokens + ((t - this.tokensAt) / 1000) * rate);
    this.tokensAt = t;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  /** Advances the window to now, clearing seconds that fell out of it; returns the current slot. */
  private roll(): number {
    const second = Math.floor(this.now() / 1000);
    if (second > this.second) {
      for (let s = Math.max(this.second + 1, second - WINDOW_S + 1); s <= second; s++) {
        this.requests[s % WINDOW_S] = 0;
        this.ratioRetries[s % WINDOW_S] = 0;
      }
      this.second = second;
    }
    return this.second % WINDOW_S;
  }
}

/** Counters of retries made and retries refused, by reason (future metric `weft_retries_skipped_total{reason}`). */
export class RetryStats {
  retries = 0;
  readonly skipped: Record<SkipReason, number> = { limit: 0, 'non-idempotent': 0, 'body-too-large': 0, deadline: 0, budget: 0 };
}

/** The retry state shared by every listener of a sidecar: budgets by key, and counters. */
export class RetryBudgets {
  private readonly budgets = new Map<string, RetryBudget>();
  readonly stats = new RetryStats();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** The budget for `spec.key`, created on first use; later specs update its limits in place. */
  get(spec: RetryBudgetSpec): RetryBudget {
    let b = this.budgets.get(spec.key);
    if (!b) {
      b = new RetryBudget(spec, this.now);
      this.budgets.set(spec.key, b);
    } else {
      b.update(spec);
    }
    return b;
  }

  /** Forgets budgets whose key is not in `keep` (destinations that left the config). */
  retain(keep: Iterable<string>): void {
    const wanted = new Set(keep);
    for (const key of this.budgets.keys()) if (!wanted.has(key)) this.budgets.delete(key);
  }
}

/** The process's default: listeners not given their own share this one. */
export const SHARED_RETRY_BUDGETS = new RetryBudgets();
