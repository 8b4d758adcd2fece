/** Builders for retry tests: a `RetryPolicy` with test-friendly defaults. */
import type { RetryCondition, RetryPolicy } from '../src/config';

/** 2 retries on 5xx, 25–250 ms backoff, 64 KiB buffer, a 20% + 10/s budget keyed `test`. */
export function retryPolicy(opts: Partial<Omit<RetryPolicy, 'retryOn' | 'retriableStatusCodes' | 'grpcStatuses'>> & {
  retryOn?: RetryCondition[];
  retriableStatusCodes?: number[];
  grpcStatuses?: number[];
} = {}): RetryPolicy {
  return {
    numRetries: 2,
    perTryTimeoutMs: 0,
    backoff: { baseMs: 25, maxMs: 250 },
    bufferLimitBytes: 64 * 1024,
    retryNonIdempotent: false,
    budget: { key: 'test', percent: 20, minRetriesPerSecond: 10 },
    ...opts,
    retryOn: new Set(opts.retryOn ?? ['5xx']),
    retriableStatusCodes: new Set(opts.retriableStatusCodes ?? []),
    grpcStatuses: new Set(opts.grpcStatuses ?? []),
  };
}

