/**
 * A route's `retries` and the policy's `retryBudget` → Envoy `RouteAction.retry_policy`, plus the
 * Route fields Envoy has no retry field for (docs/configuration.md, "Retries"):
 *
 * - `per_request_buffer_limit_bytes` (Envoy's own Route field): the replay buffer, when set;
 * - `metadata.filter_metadata["weft.dev"]`: `retry_budget {percent, min_retries_per_second}` and
 *   `retry_non_idempotent`. Envoy keeps its retry budget on the Cluster
 *   (`circuit_breakers.thresholds[].retry_budget`, a concurrency cap, not a rate); Weft's budget is
 *   a rate over a Service's routes, as Linkerd's, so it travels with each route and the sidecar
 *   shares one budget per virtual host.
 *
 * A route without `retries` gets Weft's default (`DEFAULT_RETRIES`): Istio's default, made safe
 * by the budget, the idempotency rule and the replay cap.
 */
import type { RetrySpec, TrafficPolicy } from '@weft/api';

type Obj = Record<string, unknown>;

/** Weft's per-route default: 2 retries on connect-failure, reset, unavailable and 503. */
export const DEFAULT_RETRIES: RetrySpec = {
  attempts: 2,
  retryOn: ['connect-failure', 'reset', 'unavailable', 'retriable-status-codes'],
  retriableStatusCodes: [503],
};
/** FIELD-NOTES 8: on by default, 20% of requests plus 10 retries per second. */
export const DEFAULT_RETRY_BUDGET = { percent: 20, minRetriesPerSecond: 10 } as const;
export const METADATA_NS = 'weft.dev';

/**
 * `retry`: fields for the RouteAction; `route`: fields for the Route. Proxyless gRPC clients get
 * only a policy's own retries with at least one attempt (gRFC A44 refuses `num_retries: 0`; gRPC
 * retries nothing by default) and no Weft metadata.
 */
export function retryFields(spec: RetrySpec | undefined, policy: TrafficPolicy | undefined, proxyless: boolean): { retry: Obj; route: Obj } {
  if (proxyless) {
    return spec && spec.attempts > 0 ? { retry: { retry_policy: retryPolicy(spec) }, route: {} } : { retry: {}, route: {} };
  }
  const r = spec ?? DEFAULT_RETRIES;
  const budget = policy?.retryBudget ?? DEFAULT_RETRY_BUDGET;
  const fields: Obj = {
    retry_budget: {
      structValue: {
        fields: { percent: { numberValue: budget.percent }, min_retries_per_second: { numberValue: budget.minRetriesPerSecond } },
      },
    },
  };
  if (r.retryNonIdempotent) fields.retry_non_idempotent = { boolValue: true };
  return {
    retry: { retry_policy: retryPolicy(r) },
    route: {
      // google.protobuf.Struct is written with protobufjs's camelCase well-known names.
      metadata: { filter_metadata: { [METADATA_NS]: { fields } } },
      ...(r.bufferLimitBytes !== undefined ? { per_request_buffer_limit_bytes: { value: r.bufferLimitBytes } } : {}),
    },
  };
}

/** Envoy's RetryPolicy; the `retryOn` names are Envoy's own, gRPC conditions included. */
export function retryPolicy(r: RetrySpec): Obj {
  return {
    retry_on: r.retryOn.join(','),
    num_retries: { value: r.attempts },
    ...(r.perTryTimeoutMs !== undefined ? { per_try_timeout: durationOf(r.perTryTimeoutMs) } : {}),
    ...(r.retriableStatusCodes.length ? { retriable_status_codes: [...r.retriableStatusCodes] } : {}),
    ...(r.backoff ? { retry_back_off: { base_interval: durationOf(r.backoff.baseIntervalMs), max_interval: durationOf(r.backoff.maxIntervalMs) } } : {}),
  };
}

function durationOf(ms: number): Obj {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 };
}
