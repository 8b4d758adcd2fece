/**
 * Retry rules, backoff and the budget as pure logic: no sockets, an injected clock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RetryCondition } from '../src/config';
import { retryPolicy } from './retry-fixtures';
import { RetryBudget, RetryBudgets } from '../src/retry-budget';
import { backoffMs, decideRetry, grpcStatusOf, matchesRetryOn, type AttemptFailure, type RetryContext } from '../src/retry-policy';

const CONNECT: AttemptFailure = { kind: 'connect-failure' };
const RESET: AttemptFailure = { kind: 'reset' };
const PER_TRY: AttemptFailure = { kind: 'per-try-timeout' };
const status = (s: number, grpcStatus?: number): AttemptFailure => ({ kind: 'status', status: s, ...(grpcStatus !== undefined ? { grpcStatus } : {}) });

const MATCHES: [RetryCondition[], AttemptFailure, boolean][] = [
  [['5xx'], status(500), true],
  [['5xx'], status(503), true],
  [['5xx'], status(429), false],
  [['5xx'], CONNECT, true],
  [['5xx'], RESET, true],
  [['5xx'], PER_TRY, true],
  [['gateway-error'], status(502), true],
  [['gateway-error'], status(504), true],
  [['gateway-error'], status(500), false],
  [['gateway-error'], CONNECT, true],
  [['reset'], RESET, true],
  [['reset'], PER_TRY, true],
  [['reset'], CONNECT, true],
  [['reset'], status(503), false],
  [['connect-failure'], CONNECT, true],
  [['connect-failure'], RESET, false],
  [['connect-failure'], PER_TRY, false],
  [['retriable-status-codes'], status(503), true], // 503 is in the list below
  [['retriable-status-codes'], status(500), false],
  [['unavailable'], status(200, 14), true],
  [['unavailable'], status(200, 8), false],
  [['unavailable'], status(503), false],
  [['refused-stream'], RESET, false],
];

for (const [on, failure, expected] of MATCHES) {
  test(`retryOn ${on.join(',')} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(failure)}`, () => {
    const grpc = on.includes('unavailable') ? [14] : [];
    assert.equal(matchesRetryOn(retryPolicy({ retryOn: on, retriableStatusCodes: [503], grpcStatuses: grpc }), failure), expected);
  });
}

const ctx = (over: Partial<RetryContext> = {}): RetryContext => ({
  policy: retryPolicy({ retryOn: ['5xx'] }),
  method: 'GET',
  retriesDone: 0,
  bodyReplayable: true,
  remainingMs: Infinity,
  withdraw: () => true,
  random: () => 0.5,
  ...over,
});

test('decideRetry: a match within limits is retried after the jittered backoff', () => {
  assert.deepEqual(decideRetry(ctx(), status(503)), { retry: true, delayMs: 12 });
  assert.deepEqual(decideRetry(ctx(), status(404)), { retry: false }, 'no match is not a skipped retry');
});

test('decideRetry: refusals are counted by reason, in order, and the budget is asked last', () => {
  let asked = 0;
  const withdraw = (): boolean => (asked++, false);
  assert.deepEqual(decideRetry(ctx({ retriesDone: 2, withdraw }), status(503)), { retry: false, skipped: 'limit' });
  assert.deepEqual(decideRetry(ctx({ method: 'POST', withdraw }), status(503)), { retry: false, skipped: 'non-idempotent' });
  assert.deepEqual(decideRetry(ctx({ method: 'PATCH', withdraw }), RESET), { retry: false, skipped: 'non-idempotent' });
  assert.deepEqual(decideRetry(ctx({ bodyReplayable: false, withdraw }), status(503)), { retry: false, skipped: 'body-too-large' });
  assert.deepEqual(decideRetry(ctx({ remainingMs: 5, withdraw }), status(503)), { retry: false, skipped: 'deadline' });
  assert.equal(asked, 0, 'the budget is not charged for a retry refused on other grounds');
  assert.deepEqual(decideRetry(ctx({ withdraw }), status(503)), { retry: false, skipped: 'budget' });
  assert.equal(asked, 1);
});

test('decideRetry: a connect failure is retried for POST; the opt-in retries POST after it was sent', () => {
  assert.equal(decideRetry(ctx({ method: 'POST' }), CONNECT).retry, true);
  assert.equal(decideRetry(ctx({ method: 'POST', policy: retryPolicy({ retryNonIdempotent: true }) }), RESET).retry, true);
  for (const m of ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']) assert.equal(decideRetry(ctx({ method: m }), RESET).retry, true, m);
});

test('backoff: fully jittered, doubling from base, capped at max', () => {
  const p = retryPolicy({ backoff: { baseMs: 25, maxMs: 250 } });
  const top = (): number => 0.999999;
  assert.deepEqual([1, 2, 3, 4, 5, 6, 40].map((n) => backoffMs(p, n, top)), [24, 49, 99, 199, 249, 249, 249]);
  assert.equal(backoffMs(p, 3, () => 0), 0);
  const samples = Array.from({ length: 200 }, () => backoffMs(p, 2));
  assert.ok(samples.every((s) => s >= 0 && s < 50));
  assert.ok(new Set(samples).size > 10, 'jittered');
});

test('grpc-status is read from headers only when it is a number', () => {
  assert.equal(grpcStatusOf('14'), 14);
  assert.equal(grpcStatusOf(' 0 '), 0);
  assert.equal(grpcStatusOf(undefined), undefined);
  assert.equal(grpcStatusOf('unavailable'), undefined);
});

test('budget: retries up to percent of the requests in the window, plus the per-second minimum', () => {
  let now = 5_000;
  const b = new RetryBudget({ percent: 20, minRetriesPerSecond: 10 }, () => now);
  for (let i = 0; i < 100; i++) b.deposit();
  let granted = 0;
  while (b.withdraw() && granted < 1000) granted++;
  assert.equal(granted, 20 + 10, '20% of 100 requests, and one second of the minimum');
  now += 500;
  granted = 0;
  while (b.withdraw() && granted < 1000) granted++;
  assert.equal(granted, 5, 'the minimum refills at 10/s');
  now += 10_000; // the window has passed: the requests no longer count
  granted = 0;
  while (b.withdraw() && granted < 1000) granted++;
  assert.equal(granted, 10, 'only the minimum (capped at one second) is left');
});

test('budget: at a steady rate, retries stay within percent of requests plus the minimum per second', () => {
  let now = 0;
  const b = new RetryBudget({ percent: 20, minRetriesPerSecond: 10 }, () => now);
  let requests = 0;
  let retries = 0;
  // 200 requests/s for 30 s, each wanting 3 retries (an upstream failing 100%).
  for (let ms = 0; ms < 30_000; ms += 5) {
    now = ms;
    b.deposit();
    requests++;
    for (let k = 0; k < 3; k++) if (b.withdraw()) retries++;
  }
  assert.ok(retries <= requests * 0.2 + 10 * 31, `${retries} retries for ${requests} requests`);
  assert.ok(retries >= requests * 0.2, 'the budget is used, not starved');
});

test('budgets are shared per key and take new limits in place', () => {
  const budgets = new RetryBudgets(() => 0);
  const a = budgets.get({ key: 'outbound/a', percent: 20, minRetriesPerSecond: 0 });
  assert.equal(budgets.get({ key: 'outbound/a', percent: 50, minRetriesPerSecond: 0 }), a);
  for (let i = 0; i < 10; i++) a.deposit();
  let granted = 0;
  while (a.withdraw() && granted < 100) granted++;
  assert.equal(granted, 5, 'the new 50% applies');
  assert.notEqual(budgets.get({ key: 'outbound/b', percent: 20, minRetriesPerSecond: 0 }), a);
  budgets.retain(['outbound/b']);
  assert.notEqual(budgets.get({ key: 'outbound/a', percent: 50, minRetriesPerSecond: 0 }), a, 'forgotten, then new');
});
