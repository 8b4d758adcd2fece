/**
 * The retry state of one request: the policy, its budget, the retries made so far and the route
 * timeout they must fit in. A forward path asks `next(failure)` after each failed attempt and gets
 * the backoff to wait, or `undefined` (no retry; a refusal is counted by reason). The rules are
 * retry-policy.ts's `decideRetry`; this only binds them to one request's counters.
 *
 * Used by both forward paths: forward-http.ts (HTTP/1.1) and forward-h2.ts (HTTP/2, gRPC).
 */
import type { RetryPolicy } from './config';
import type { RetryBudget, RetryBudgets } from './retry-budget';
import { decideRetry, mayRetryResponse, type AttemptFailure } from './retry-policy';

export class RetryRun {
  /** Retries made so far. */
  retries = 0;
  private readonly budget: RetryBudget | undefined;
  /** When the route timeout started (read only when there is one). */
  private readonly started: number;

  /**
   * Counts the request in its budget (its first attempt). `timeoutMs` is the route timeout from
   * now, retries and backoff included; 0: none.
   */
  constructor(
    readonly policy: RetryPolicy | undefined,
    private readonly budgets: RetryBudgets,
    private readonly method: string | undefined,
    private readonly timeoutMs: number,
  ) {
    this.started = timeoutMs > 0 ? performance.now() : 0;
    if (policy) {
      this.budget = budgets.get(policy.budget);
      this.budget.deposit();
    }
  }

  /**
   * After a failed attempt: the backoff before the retry (the retry is counted and its budget
   * taken), or `undefined` when there is none (a refusal the policy asked for is counted).
   */
  next(failure: AttemptFailure, bodyReplayable: boolean): number | undefined {
    const policy = this.policy;
    if (!policy) return undefined;
    const decision = decideRetry(
      {
        policy,
        method: this.method,
        retriesDone: this.retries,
        bodyReplayable,
        remainingMs: this.timeoutMs > 0 ? this.timeoutMs - (performance.now() - this.started) : Infinity,
        withdraw: () => this.budget!.withdraw(),
      },
      failure,
    );
    if (!decision.retry) {
      if (decision.skipped) this.budgets.stats.skipped[decision.skipped]++;
      return undefined;
    }
    this.retries++;
    this.budgets.stats.retries++;
    return decision.delayMs;
  }

  /** Whether a failure seen after response headers (a status in trailers) could still be retried. */
  mayRetryResponse(bodyReplayable: boolean): boolean {
    return mayRetryResponse(this.policy, this.method, this.retries, bodyReplayable);
  }
}
