/**
 * The `weft.dev/v1alpha1 TrafficPolicy` parser: a structural schema (unknown fields are errors)
 * plus the checks a schema cannot express (unique names, declared subsets, RE2 regexes, weights).
 * Fields this version accepts but does not enforce would be validated and listed in
 * `notYetSupported` (none today: every field is enforced).
 */
import type {
  Backend,
  ConnectionPoolSpec,
  FaultSpec,
  HeaderMatch,
  MirrorSpec,
  ObjectMeta,
  OutlierDetectionSpec,
  RetryBudgetSpec,
  RetrySpec,
  RouteMatchSpec,
  RouteSpec,
  StringMatch,
  SubsetSpec,
  TrafficPolicy,
} from './kube-types';
import { FieldChecker, absent, fieldPath, isPlainObject, names } from './kube-parse-fields';

/**
 * The `retryOn` conditions: SPEC.md's ("CRDs"), and the other gRPC statuses Envoy retries on
 * (FIELD-NOTES 10). The names are Envoy's `retry_on` names.
 */
export const RETRY_ON = [
  '5xx', 'gateway-error', 'reset', 'connect-failure', 'retriable-status-codes',
  'unavailable', 'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted',
] as const;
/** Used when `retries.retryOn` is omitted: Istio's default, in the terms of `RETRY_ON`. */
export const DEFAULT_RETRY_ON: readonly string[] = ['connect-failure', 'reset', 'unavailable', 'retriable-status-codes'];
export const LB_ALGORITHMS = ['EWMA', 'RoundRobin', 'LeastRequest', 'Random'] as const;

const SPEC_FIELDS = ['targetRef', 'subsets', 'routes', 'loadBalancer', 'connectionPool', 'outlierDetection', 'retryBudget'];
const ROUTE_FIELDS = ['name', 'match', 'backends', 'timeout', 'retries', 'fault', 'mirror'];
/** An HTTP method: an uppercase token. */
const METHOD = /^[A-Z][A-Z0-9!#$%&'*+.^_`|~-]*$/;
/** A header name: a token, or an HTTP/2 pseudo-header such as `:authority`. */
const HEADER_NAME = /^:?[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/** Parses a TrafficPolicy's `spec`; `c` collects the errors, so a partial result is discarded by the caller. */
export function parseTrafficPolicy(meta: ObjectMeta, raw: Record<string, unknown>, c: FieldChecker): TrafficPolicy {
  const spec = c.object(raw.spec, 'spec', { required: true, fields: SPEC_FIELDS }) ?? {};
  const notYetSupported: string[] = [];

  const ref = c.object(spec.targetRef, 'spec.targetRef', { required: true, fields: ['kind', 'name'] });
  if (ref !== undefined) c.oneOf(ref.kind, 'spec.targetRef.kind', ['Service'], true);
  const targetName = ref ? c.string(ref.name, 'spec.targetRef.name', { required: true, check: names.dns1035Label }) : undefined;

  const subsets = parseSubsets(spec.subsets, c);
  const declared = new Set(subsets.map((s) => s.name));
  const routes: RouteSpec[] = [];
  const routeNames = new Map<string, number>();
  (c.array(spec.routes, 'spec.routes') ?? []).forEach((r, i) => {
    const route = parseRoute(r, `spec.routes[${i}]`, declared, c, notYetSupported);
    if (route === undefined) return;
    const first = routeNames.get(route.name);
    if (first !== undefined) c.error(`spec.routes[${i}].name`, `duplicate route name "${route.name}" (also spec.routes[${first}])`);
    else routeNames.set(route.name, i);
    routes.push(route);
  });

  let loadBalancer: TrafficPolicy['loadBalancer'];
  const lb = c.object(spec.loadBalancer, 'spec.loadBalancer', { fields: ['algorithm'] });
  if (lb !== undefined) {
    loadBalancer = { algorithm: c.oneOf(lb.algorithm, 'spec.loadBalancer.algorithm', LB_ALGORITHMS) ?? 'EWMA' };
  }
  const connectionPool = parseConnectionPool(spec.connectionPool, 'spec.connectionPool', c);
  const outlierDetection = parseOutlierDetection(spec.outlierDetection, 'spec.outlierDetection', c);
  const retryBudget = parseRetryBudget(spec.retryBudget, 'spec.retryBudget', c);
  // Every whole-policy field is enforced now; `extra` stays for fields a later version adds.
  const extra: Record<string, unknown> = {};
  return {
    kind: 'TrafficPolicy',
    meta,
    targetRef: { kind: 'Service', name: targetName ?? '' },
    subsets,
    routes,
    ...(loadBalancer ? { loadBalancer } : {}),
    ...(connectionPool ? { connectionPool } : {}),
    ...(outlierDetection ? { outlierDetection } : {}),
    ...(retryBudget ? { retryBudget } : {}),
    notYetSupported,
    extra,
  };
}

function parseSubsets(v: unknown, c: FieldChecker): SubsetSpec[] {
  const out: SubsetSpec[] = [];
  const seen = new Map<string, number>();
  (c.array(v, 'spec.subsets') ?? []).forEach((raw, i) => {
    const p = `spec.subsets[${i}]`;
    const s = c.object(raw, p, { required: true, fields: ['name', 'labels'] });
    if (s === undefined) return;
    const name = c.string(s.name, `${p}.name`, { required: true, check: names.dnsLabel });
    if (absent(s.labels)) c.error(`${p}.labels`, 'required');
    const labels = c.stringMap(s.labels, `${p}.labels`, true);
    if (isPlainObject(s.labels) && Object.keys(s.labels).length === 0) c.error(`${p}.labels`, 'must select at least one label');
    if (name === undefined) return;
    const first = seen.get(name);
    if (first !== undefined) c.error(`${p}.name`, `duplicate subset name "${name}" (also spec.subsets[${first}])`);
    else seen.set(name, i);
    out.push({ name, labels });
  });
  return out;
}

function parseRoute(v: unknown, p: string, subsets: ReadonlySet<string>, c: FieldChecker, nys: string[]): RouteSpec | undefined {
  const r = c.object(v, p, { required: true, fields: ROUTE_FIELDS });
  if (r === undefined) return undefined;
  const name = c.string(r.name, `${p}.name`, { required: true, check: names.dnsLabel }) ?? '';
  const match = (c.array(r.match, `${p}.match`) ?? []).map((m, i) => parseMatch(m, `${p}.match[${i}]`, c));
  const backends = parseBackends(r.backends, `${p}.backends`, subsets, c);
  const timeoutMs = c.duration(r.timeout, `${p}.timeout`);
  const retries = parseRetries(r.retries, `${p}.retries`, c);
  const fault = absent(r.fault) ? undefined : parseFault(r.fault, `${p}.fault`, c);
  const mirror = absent(r.mirror) ? undefined : parseMirror(r.mirror, `${p}.mirror`, c);
  // Every route field is enforced now; `nys` stays for fields a later version adds.
  void nys;
  return {
    name,
    match: match.filter((m): m is RouteMatchSpec => m !== undefined),
    backends,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    ...(retries ? { retries } : {}),
    ...(fault ? { fault } : {}),
    ...(mirror ? { mirror } : {}),
  };
}

function parseStringMatch(m: Record<string, unknown>, p: string, c: FieldChecker, kinds: readonly string[]): StringMatch | 'present' | undefined {
  const given = kinds.filter((k) => !absent(m[k]));
  if (given.length !== 1) return c.error(p, `must set exactly one of ${kinds.join(', ')}`), undefined;
  const kind = given[0];
  if (kind === 'present') {
    if (m.present !== true) c.error(`${p}.present`, 'must be true (omit the match to accept requests without the header)');
    return 'present';
  }
  const value = kind === 'regex' ? c.regex(m.regex, `${p}.regex`) : c.string(m[kind], `${p}.${kind}`, { required: true });
  return value === undefined ? undefined : { kind: kind as StringMatch['kind'], value };
}

function parseMatch(v: unknown, p: string, c: FieldChecker): RouteMatchSpec | undefined {
  const m = c.object(v, p, { required: true, fields: ['path', 'method', 'headers'] });
  if (m === undefined) return undefined;
  let path: StringMatch | undefined;
  const rawPath = c.object(m.path, `${p}.path`, { fields: ['exact', 'prefix', 'regex'] });
  if (rawPath !== undefined) {
    const sm = parseStringMatch(rawPath, `${p}.path`, c, ['exact', 'prefix', 'regex']);
    if (sm !== undefined && sm !== 'present') {
      if (sm.kind !== 'regex' && !sm.value.startsWith('/')) c.error(`${p}.path.${sm.kind}`, 'must start with "/"');
      path = sm;
    }
  }
  const method = c.string(m.method, `${p}.method`, {
    check: (s) => (METHOD.test(s) ? undefined : 'must be an uppercase HTTP method token such as GET'),
  });
  const headers: HeaderMatch[] = [];
  (c.array(m.headers, `${p}.headers`) ?? []).forEach((h, i) => {
    const hp = `${p}.headers[${i}]`;
    const raw = c.object(h, hp, { required: true, fields: ['name', 'exact', 'prefix', 'regex', 'present'] });
    if (raw === undefined) return;
    const name = c.string(raw.name, `${hp}.name`, {
      required: true,
      check: (s) => (HEADER_NAME.test(s) ? undefined : 'must be an HTTP header name'),
    });
    const sm = parseStringMatch(raw, hp, c, ['exact', 'prefix', 'regex', 'present']);
    // Header names are case-insensitive; the lowercase form is what HTTP/2 carries.
    if (name === undefined || sm === undefined) return;
    const lower = name.toLowerCase();
    headers.push(sm === 'present' ? { name: lower, kind: 'present' } : { name: lower, kind: sm.kind, value: sm.value });
  });
  return { ...(path ? { path } : {}), ...(method ? { method } : {}), headers };
}

function parseBackends(v: unknown, p: string, subsets: ReadonlySet<string>, c: FieldChecker): Backend[] {
  const list = c.array(v, p, true);
  if (list === undefined) return [];
  if (list.length === 0) return c.error(p, 'must list at least one backend'), [];
  const out: Backend[] = [];
  let sum = 0;
  let weightsOk = true;
  list.forEach((raw, i) => {
    const bp = `${p}[${i}]`;
    const b = c.object(raw, bp, { required: true, fields: ['subset', 'service', 'port', 'weight'] });
    if (b === undefined) return (weightsOk = false), undefined;
    // One backend takes all the traffic unless told otherwise; with several, weights are explicit.
    let weight: number | undefined = 100;
    if (!absent(b.weight) || list.length > 1) {
      if (absent(b.weight)) c.error(`${bp}.weight`, 'required when a route has more than one backend');
      weight = c.int(b.weight, `${bp}.weight`, 0, 100);
    }
    if (weight === undefined) weightsOk = false;
    else sum += weight;
    if (absent(b.subset) === absent(b.service)) return c.error(bp, 'must set exactly one of subset, service'), undefined;
    if (!absent(b.subset)) {
      if (!absent(b.port)) c.error(`${bp}.port`, 'only allowed with service');
      const subset = c.string(b.subset, `${bp}.subset`, { required: true });
      if (subset !== undefined && !subsets.has(subset)) c.error(`${bp}.subset`, `names no subset declared in spec.subsets: "${subset}"`);
      if (subset !== undefined && weight !== undefined) out.push({ kind: 'subset', subset, weight });
      return undefined;
    }
    const service = c.string(b.service, `${bp}.service`, { required: true, check: names.dns1035Label });
    const port = c.int(b.port, `${bp}.port`, 1, 65535);
    if (service !== undefined && weight !== undefined) {
      out.push({ kind: 'service', service, ...(port !== undefined ? { port } : {}), weight });
    }
    return undefined;
  });
  if (weightsOk && sum === 0) c.error(p, 'backend weights must add up to more than 0');
  return out;
}

function parseRetries(v: unknown, p: string, c: FieldChecker): RetrySpec | undefined {
  const r = c.object(v, p, { fields: ['attempts', 'perTryTimeout', 'retryOn', 'retriableStatusCodes', 'backoff', 'retryNonIdempotent', 'bufferLimitBytes'] });
  if (r === undefined) return undefined;
  const attempts = c.int(r.attempts, `${p}.attempts`, 0, Number.MAX_SAFE_INTEGER, true) ?? 0;
  const perTryTimeoutMs = c.duration(r.perTryTimeout, `${p}.perTryTimeout`);
  const retryOnRaw = c.array(r.retryOn, `${p}.retryOn`);
  const retryOn = retryOnRaw
    ? retryOnRaw.map((x, i) => c.oneOf(x, `${p}.retryOn[${i}]`, RETRY_ON, true)).filter((x): x is (typeof RETRY_ON)[number] => x !== undefined)
    : DEFAULT_RETRY_ON;
  const retriableStatusCodes = (c.array(r.retriableStatusCodes, `${p}.retriableStatusCodes`) ?? [])
    .map((x, i) => c.int(x, `${p}.retriableStatusCodes[${i}]`, 100, 599, true))
    .filter((x): x is number => x !== undefined);
  let backoff: RetrySpec['backoff'];
  const b = c.object(r.backoff, `${p}.backoff`, { fields: ['baseInterval', 'maxInterval'] });
  if (b !== undefined) {
    const baseIntervalMs = c.duration(b.baseInterval, `${p}.backoff.baseInterval`, true);
    // Envoy's default cap: ten times the base interval.
    const maxIntervalMs = c.duration(b.maxInterval, `${p}.backoff.maxInterval`) ?? (baseIntervalMs ?? 0) * 10;
    if (baseIntervalMs !== undefined && maxIntervalMs < baseIntervalMs) {
      c.error(`${p}.backoff.maxInterval`, 'must not be less than baseInterval');
    }
    if (baseIntervalMs !== undefined) backoff = { baseIntervalMs, maxIntervalMs };
  }
  if (!absent(r.retryNonIdempotent) && typeof r.retryNonIdempotent !== 'boolean') c.error(`${p}.retryNonIdempotent`, 'must be a boolean');
  const retryNonIdempotent = r.retryNonIdempotent === true;
  // Up to 4 GiB - 1: Envoy's per_request_buffer_limit_bytes is a uint32.
  const bufferLimitBytes = c.int(r.bufferLimitBytes, `${p}.bufferLimitBytes`, 0, 0xffffffff);
  return {
    attempts,
    ...(perTryTimeoutMs !== undefined ? { perTryTimeoutMs } : {}),
    retryOn,
    retriableStatusCodes,
    ...(backoff ? { backoff } : {}),
    ...(retryNonIdempotent ? { retryNonIdempotent } : {}),
    ...(bufferLimitBytes !== undefined ? { bufferLimitBytes } : {}),
  };
}

/** `retryBudget`: both fields default to the built-in budget's (20% + 10/s, FIELD-NOTES 8). */
function parseRetryBudget(v: unknown, p: string, c: FieldChecker): RetryBudgetSpec | undefined {
  const o = c.object(v, p, { fields: ['percent', 'minRetriesPerSecond'] });
  if (o === undefined) return undefined;
  const percent = c.number(o.percent, `${p}.percent`, 0, 100) ?? 20;
  const minRetriesPerSecond = c.int(o.minRetriesPerSecond, `${p}.minRetriesPerSecond`, 0, Number.MAX_SAFE_INTEGER) ?? 10;
  return { percent, minRetriesPerSecond };
}

/** `routes[].fault`: delay and abort, each with a required percent (0–100). */
function parseFault(v: unknown, p: string, c: FieldChecker): FaultSpec | undefined {
  const f = c.object(v, p, { fields: ['delay', 'abort'] });
  if (f === undefined) return undefined;
  if (absent(f.delay) && absent(f.abort)) c.error(p, 'must set delay, abort or both');
  let delay: FaultSpec['delay'];
  const d = c.object(f.delay, `${p}.delay`, { fields: ['percent', 'fixedDelay'] });
  if (d !== undefined) {
    const percent = c.number(d.percent, `${p}.delay.percent`, 0, 100, true);
    const fixedDelayMs = c.duration(d.fixedDelay, `${p}.delay.fixedDelay`, true);
    if (percent !== undefined && fixedDelayMs !== undefined) delay = { percent, fixedDelayMs };
  }
  let abort: FaultSpec['abort'];
  const a = c.object(f.abort, `${p}.abort`, { fields: ['percent', 'httpStatus'] });
  if (a !== undefined) {
    const percent = c.number(a.percent, `${p}.abort.percent`, 0, 100, true);
    const httpStatus = c.int(a.httpStatus, `${p}.abort.httpStatus`, 200, 599, true);
    if (percent !== undefined && httpStatus !== undefined) abort = { percent, httpStatus };
  }
  return { ...(delay ? { delay } : {}), ...(abort ? { abort } : {}) };
}

/** `routes[].mirror`: `percent` defaults to 100, as Istio's `mirrorPercentage`. */
function parseMirror(v: unknown, p: string, c: FieldChecker): MirrorSpec | undefined {
  const m = c.object(v, p, { fields: ['service', 'port', 'percent'] });
  if (m === undefined) return undefined;
  const service = c.string(m.service, `${p}.service`, { required: true, check: names.dns1035Label });
  const port = c.int(m.port, `${p}.port`, 1, 65535);
  const percent = c.number(m.percent, `${p}.percent`, 0, 100) ?? 100;
  return service === undefined ? undefined : { service, ...(port !== undefined ? { port } : {}), percent };
}


/** `spec.connectionPool`: non-negative integers; 0 means "the default" (docs/configuration.md). */
function parseConnectionPool(v: unknown, p: string, c: FieldChecker): ConnectionPoolSpec | undefined {
  const fields = ['maxConnections', 'maxPendingRequests', 'maxRequestsPerConnection'] as const;
  const o = c.object(v, p, { fields: [...fields] });
  if (o === undefined) return undefined;
  const out: Record<string, number> = {};
  for (const k of fields) {
    const n = c.int(o[k], fieldPath(p, k), 0, Number.MAX_SAFE_INTEGER);
    if (n !== undefined) out[k] = n;
  }
  return out as ConnectionPoolSpec;
}

/** `spec.outlierDetection`: durations must be positive (Envoy refuses 0). */
function parseOutlierDetection(v: unknown, p: string, c: FieldChecker): OutlierDetectionSpec | undefined {
  const o = c.object(v, p, { fields: ['consecutive5xxErrors', 'interval', 'baseEjectionTime', 'maxEjectionPercent'] });
  if (o === undefined) return undefined;
  const consecutive5xxErrors = c.int(o.consecutive5xxErrors, `${p}.consecutive5xxErrors`, 0, Number.MAX_SAFE_INTEGER);
  const intervalMs = c.duration(o.interval, `${p}.interval`);
  const baseEjectionTimeMs = c.duration(o.baseEjectionTime, `${p}.baseEjectionTime`);
  const maxEjectionPercent = c.int(o.maxEjectionPercent, `${p}.maxEjectionPercent`, 0, 100);
  if (intervalMs === 0) c.error(`${p}.interval`, 'must be more than 0');
  if (baseEjectionTimeMs === 0) c.error(`${p}.baseEjectionTime`, 'must be more than 0');
  return {
    ...(consecutive5xxErrors !== undefined ? { consecutive5xxErrors } : {}),
    ...(intervalMs !== undefined ? { intervalMs } : {}),
    ...(baseEjectionTimeMs !== undefined ? { baseEjectionTimeMs } : {}),
    ...(maxEjectionPercent !== undefined ? { maxEjectionPercent } : {}),
  };
}
