/**
 * Retries and the retry budget in translation: a TrafficPolicy's `retries` → Envoy `retry_policy`,
 * `retryBudget` and the non-idempotent opt-in → route metadata `weft.dev`, Weft's default on routes
 * without `retries`, and the sidecar accepting exactly what is sent (decoded from the wire).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packAny, parseNodeId, sidecarNodeId, TypeUrl, unpackAny, type RetrySpec, type RouteSpec } from '@weft/api';
import { translate } from '../src/translate';
import { policy, shop, SUBSETS, world } from './world-fixtures';

const FRONTEND = parseNodeId(sidecarNodeId('127.0.0.11', 'frontend', 'shop'));
const PROXYLESS = parseNodeId('grpc-client-1');
const BACKEND = 'backend.shop.svc.cluster.local';
type Obj = Record<string, any>;

const withRetries = (retries: RetrySpec | undefined): RouteSpec => ({
  name: 'default',
  match: [],
  backends: [{ kind: 'subset', subset: 'v1', weight: 100 }],
  timeoutMs: 3000,
  ...(retries ? { retries } : {}),
});

function routesOf(r: ReturnType<typeof translate>, name: string, vhost = `${BACKEND}:80`): Obj[] {
  const rc = r.get(TypeUrl.RouteConfiguration as never)?.get(name) as Obj;
  return rc.virtual_hosts.find((v: Obj) => v.name === vhost).routes;
}

const budgetMetadata = (percent: number, min: number, extra: Obj = {}): Obj => ({
  filter_metadata: {
    'weft.dev': {
      fields: {
        retry_budget: { structValue: { fields: { percent: { numberValue: percent }, min_retries_per_second: { numberValue: min } } } },
        ...extra,
      },
    },
  },
});

const TABLE: { what: string; retries: RetrySpec | undefined; policy?: Obj; action: Obj; route?: Obj }[] = [
  {
    what: 'SPEC.md example: every field',
    retries: {
      attempts: 3,
      perTryTimeoutMs: 1000,
      retryOn: ['5xx', 'gateway-error', 'reset', 'connect-failure', 'retriable-status-codes', 'unavailable'],
      retriableStatusCodes: [503],
      backoff: { baseIntervalMs: 25, maxIntervalMs: 250 },
    },
    action: {
      retry_on: '5xx,gateway-error,reset,connect-failure,retriable-status-codes,unavailable',
      num_retries: { value: 3 },
      per_try_timeout: { seconds: 1, nanos: 0 },
      retriable_status_codes: [503],
      retry_back_off: { base_interval: { seconds: 0, nanos: 25_000_000 }, max_interval: { seconds: 0, nanos: 250_000_000 } },
    },
    route: { metadata: budgetMetadata(20, 10) },
  },
  {
    what: 'gRPC conditions, no status codes, no backoff',
    retries: { attempts: 1, retryOn: ['unavailable', 'resource-exhausted', 'cancelled'], retriableStatusCodes: [] },
    action: { retry_on: 'unavailable,resource-exhausted,cancelled', num_retries: { value: 1 } },
    route: { metadata: budgetMetadata(20, 10) },
  },
  {
    what: 'attempts 0 turns retries off (the budget metadata stays)',
    retries: { attempts: 0, retryOn: ['5xx'], retriableStatusCodes: [] },
    action: { retry_on: '5xx', num_retries: { value: 0 } },
    route: { metadata: budgetMetadata(20, 10) },
  },
  {
    what: 'the non-idempotent opt-in and a replay buffer',
    retries: { attempts: 2, retryOn: ['reset'], retriableStatusCodes: [], retryNonIdempotent: true, bufferLimitBytes: 1 << 20 },
    action: { retry_on: 'reset', num_retries: { value: 2 } },
    route: { metadata: budgetMetadata(20, 10, { retry_non_idempotent: { boolValue: true } }), per_request_buffer_limit_bytes: { value: 1 << 20 } },
  },
  {
    what: "the policy's retryBudget",
    retries: { attempts: 2, retryOn: ['5xx'], retriableStatusCodes: [] },
    policy: { retryBudget: { percent: 50, minRetriesPerSecond: 0 } },
    action: { retry_on: '5xx', num_retries: { value: 2 } },
    route: { metadata: budgetMetadata(50, 0) },
  },
  {
    what: "a route without retries gets Weft's default: 2 retries on connect-failure, reset, unavailable and 503",
    retries: undefined,
    action: { retry_on: 'connect-failure,reset,unavailable,retriable-status-codes', num_retries: { value: 2 }, retriable_status_codes: [503] },
    route: { metadata: budgetMetadata(20, 10) },
  },
];

for (const row of TABLE) {
  test(`retry_policy: ${row.what}`, () => {
    const p = { ...policy('backend', 'backend', [withRetries(row.retries)], SUBSETS), ...row.policy };
    const [route] = routesOf(translate(world([...shop(), p]), FRONTEND), 'outbound');
    assert.deepEqual(route!.route.retry_policy, row.action);
    const { name: _n, match: _m, route: _r, ...rest } = route!;
    assert.deepEqual(rest, row.route ?? {});
  });
}

test('proxyless gRPC clients get only a policy’s own retries of at least one attempt, without Weft metadata', () => {
  const retries: RetrySpec = { attempts: 2, retryOn: ['unavailable'], retriableStatusCodes: [], backoff: { baseIntervalMs: 10, maxIntervalMs: 100 } };
  const name = `${BACKEND}:80`;
  const [withPolicy] = routesOf(translate(world([...shop(), policy('backend', 'backend', [withRetries(retries)], SUBSETS)]), PROXYLESS), name, name);
  assert.deepEqual(withPolicy!.route.retry_policy, {
    retry_on: 'unavailable',
    num_retries: { value: 2 },
    retry_back_off: { base_interval: { seconds: 0, nanos: 10_000_000 }, max_interval: { seconds: 0, nanos: 100_000_000 } },
  });
  assert.equal(withPolicy!.metadata, undefined);
  const [plain] = routesOf(translate(world(shop()), PROXYLESS), name, name);
  assert.equal(plain!.route.retry_policy, undefined, 'gRPC retries nothing by default; neither do we for it');
  const zero = { attempts: 0, retryOn: ['unavailable'], retriableStatusCodes: [] };
  const [none] = routesOf(translate(world([...shop(), policy('backend', 'backend', [withRetries(zero)], SUBSETS)]), PROXYLESS), name, name);
  assert.equal(none!.route.retry_policy, undefined, 'gRFC A44 refuses num_retries 0');
});

test('the sidecar accepts the retry policy as sent: encoded, decoded, validated', () => {
  // The sidecar's own validation, run on the wire form (as the xDS client hands it over).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { buildProxyConfig } = require('@weft/sidecar') as { buildProxyConfig: (r: Obj) => Obj };
  const retries: RetrySpec = {
    attempts: 3,
    perTryTimeoutMs: 500,
    retryOn: ['5xx', 'gateway-error', 'reset', 'connect-failure', 'retriable-status-codes', 'unavailable', 'deadline-exceeded'],
    retriableStatusCodes: [503, 429],
    backoff: { baseIntervalMs: 25, maxIntervalMs: 250 },
    retryNonIdempotent: true,
    bufferLimitBytes: 4096,
  };
  const p = { ...policy('backend', 'backend', [withRetries(retries)], SUBSETS), retryBudget: { percent: 25, minRetriesPerSecond: 3 } };
  const rc = translate(world([...shop(), p]), FRONTEND).get(TypeUrl.RouteConfiguration as never)?.get('outbound') as Obj;
  const wire = unpackAny(packAny(TypeUrl.RouteConfiguration, rc));
  const result = buildProxyConfig({ listeners: [], routes: [wire], clusters: [], assignments: [] });
  assert.ok(result.ok, result.ok ? '' : result.errors.join('; '));
  const table = result.config.routeTables.get('outbound');
  const vhost = table.virtualHosts.find((v: Obj) => v.name === `${BACKEND}:80`);
  const retry = vhost.routes[0].retry;
  assert.deepEqual([...retry.retryOn], retries.retryOn);
  assert.deepEqual([...retry.grpcStatuses], [14, 4]);
  assert.deepEqual([...retry.retriableStatusCodes], [503, 429]);
  assert.equal(retry.numRetries, 3);
  assert.equal(retry.perTryTimeoutMs, 500);
  assert.deepEqual(retry.backoff, { baseMs: 25, maxMs: 250 });
  assert.equal(retry.bufferLimitBytes, 4096);
  assert.equal(retry.retryNonIdempotent, true);
  assert.deepEqual(retry.budget, { key: `outbound/${BACKEND}:80`, percent: 25, minRetriesPerSecond: 3 });
  // Every other vhost got the default policy, which the sidecar takes as well.
  const other = table.virtualHosts.find((v: Obj) => v.name !== `${BACKEND}:80`);
  assert.equal(other.routes[0].retry.numRetries, 2);
  assert.deepEqual([...other.routes[0].retry.retriableStatusCodes], [503]);
});
