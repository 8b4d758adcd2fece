/**
 * A token bucket per identity: `burst` issuances at once, then `perSecond`. Buckets that have
 * refilled completely are forgotten, so memory follows the identities active in the last
 * `burst / perSecond` seconds.
 */
export interface RateLimit {
  readonly burst: number;
  readonly perSecond: number;
}

/** 100 at once (a Deployment's pods starting together), then 10 per second, per identity. */
export const DEFAULT_RATE_LIMIT: RateLimit = { burst: 100, perSecond: 10 };

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly limit: RateLimit, private readonly now: () => number = Date.now) {}

  /** Takes one token for `key`; false when the bucket is empty. */
  take(key: string): boolean {
    const now = this.now();
    if (this.buckets.size > 10_000) this.sweep(now);
    const b = this.buckets.get(key) ?? { tokens: this.limit.burst, at: now };
    b.tokens = Math.min(this.limit.burst, b.tokens + ((now - b.at) / 1000) * this.limit.perSecond);
    b.at = now;
    if (b.tokens < 1) {
      this.buckets.set(key, b);
      return false;
    }
    b.tokens -= 1;
    this.buckets.set(key, b);
    return true;
  }

  private sweep(now: number): void {
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.limit.perSecond >= this.limit.burst) this.buckets.delete(k);
    }
  }
}
