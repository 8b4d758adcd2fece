/**
 * The OpenAPI schema of `TrafficPolicy.spec` (types: `kube-types.ts`; semantics and messages:
 * `kube-parse-policy.ts`, whose checks it mirrors). CEL rules say what a schema cannot: exactly
 * one of a match's kinds, declared subsets, unique names, weights. RE2 validity of `regex` and
 * label keys stay with the webhook and the control plane.
 */
import { LB_ALGORITHMS, RETRY_ON } from './kube-parse-policy';
import { type Schema, celExactlyOne, s } from './crd-schema';
import { LIMITS, dns1035Label, dnsLabel, duration, labels, percent, port } from './crd-fields';

/** An HTTP method: an uppercase token (`METHOD` in kube-parse-policy.ts). */
const METHOD = "^[A-Z][A-Z0-9!#$%&'*+.^_`|~-]*$";
/** A header name or an HTTP/2 pseudo-header (`HEADER_NAME` in kube-parse-policy.ts). */
const HEADER_NAME = "^:?[A-Za-z0-9!#$%&'*+.^_`|~-]+$";

const value = (description: string, pattern?: string): Schema =>
  s.string({ description, minLength: 1, maxLength: LIMITS.value, ...(pattern ? { pattern } : {}) });

const pathMatch = s.object(
  {
    exact: value('The whole path; starts with /.', '^/'),
    prefix: value('A path prefix; starts with /.', '^/'),
    regex: value('An RE2 regular expression matching the whole path.'),
  },
  {
    description: 'Exactly one of exact, prefix, regex. Default: prefix /.',
    rules: [{ rule: celExactlyOne(['exact', 'prefix', 'regex']), message: 'must set exactly one of exact, prefix, regex' }],
  },
);

const headerMatch = s.object(
  {
    name: s.string({ description: 'A header name or pseudo-header (:authority); matched case-insensitively.', minLength: 1, maxLength: LIMITS.headerName, pattern: HEADER_NAME }),
    exact: value('The whole value.'),
    prefix: value('A prefix of the value.'),
    regex: value('An RE2 regular expression matching the whole value.'),
    present: s.boolean({ description: 'true: the header is present, whatever its value.' }),
  },
  {
    required: ['name'],
    rules: [
      { rule: celExactlyOne(['exact', 'prefix', 'regex', 'present']), message: 'must set exactly one of exact, prefix, regex, present' },
      { rule: '!has(self.present) || self.present', message: 'present must be true (omit the match to accept requests without the header)' },
    ],
  },
);

const match = s.object(
  {
    path: pathMatch,
    method: s.string({ description: 'An uppercase HTTP method such as GET.', minLength: 1, maxLength: LIMITS.method, pattern: METHOD }),
    headers: s.list(headerMatch, { description: 'All must match.', maxItems: LIMITS.headers }),
  },
  { description: 'All fields set must match.' },
);

const backend = s.object(
  {
    subset: dnsLabel('A subset declared in spec.subsets.'),
    service: dns1035Label('A Service of the policy\'s namespace.'),
    port: port('The port of `service` (only with service).'),
    weight: s.integer({ description: 'Relative weight, 0-100; 100 when the route has one backend.', minimum: 0, maximum: 100 }),
  },
  {
    description: 'A subset of the target, or another Service.',
    rules: [
      { rule: celExactlyOne(['subset', 'service']), message: 'must set exactly one of subset, service' },
      { rule: '!has(self.port) || has(self.service)', message: 'port is only allowed with service' },
    ],
  },
);

const retries = s.object(
  {
    attempts: s.integer({ description: 'Retries after the first try; 0 turns retries off.', minimum: 0 }),
    perTryTimeout: duration('Timeout of each attempt.'),
    retryOn: s.list(s.enum(RETRY_ON), { description: 'Conditions to retry on.', maxItems: RETRY_ON.length * 2 }),
    retriableStatusCodes: s.list(s.integer({ minimum: 100, maximum: 599 }), { maxItems: LIMITS.statusCodes }),
    backoff: s.object(
      {
        baseInterval: duration('First backoff interval (jittered, exponential).'),
        maxInterval: duration('Backoff cap; default 10 x baseInterval.'),
      },
      {
        required: ['baseInterval'],
        rules: [
          {
            rule: '!has(self.maxInterval) || duration(self.maxInterval) >= duration(self.baseInterval)',
            message: 'maxInterval must not be less than baseInterval',
          },
        ],
      },
    ),
    retryNonIdempotent: s.boolean({ description: 'Retry POST, PATCH, ... even after the upstream may have read them.' }),
    bufferLimitBytes: s.integer({ description: 'Request bytes kept for replay; a larger body is not retried.', minimum: 0, maximum: 0xffffffff }),
  },
  { description: 'Absent: the default retries (docs/configuration.md, "Retries").', required: ['attempts'] },
);

const fault = s.object(
  {
    delay: s.object(
      { percent: percent('Share of requests delayed.'), fixedDelay: duration('How long.') },
      { required: ['percent', 'fixedDelay'] },
    ),
    abort: s.object(
      { percent: percent('Share of requests aborted.'), httpStatus: s.integer({ description: 'The status answered.', minimum: 200, maximum: 599 }) },
      { required: ['percent', 'httpStatus'] },
    ),
  },
  {
    description: 'Fault injection: delay, then abort.',
    rules: [{ rule: 'has(self.delay) || has(self.abort)', message: 'must set delay, abort or both' }],
  },
);

const route = s.object(
  {
    name: dnsLabel('Unique within the policy.'),
    match: s.list(match, { description: 'Any entry may match; absent or empty: every request.', maxItems: LIMITS.matches }),
    backends: s.list(backend, {
      description: 'Weighted backends.',
      minItems: 1,
      maxItems: LIMITS.backends,
      rules: [
        { rule: 'self.size() == 1 || self.all(b, has(b.weight))', message: 'every backend needs a weight when a route has more than one backend' },
        { rule: 'self.exists(b, !has(b.weight) || b.weight > 0)', message: 'backend weights must add up to more than 0' },
      ],
    }),
    timeout: duration('The whole request, retries included.'),
    retries,
    fault,
    mirror: s.object(
      {
        service: dns1035Label('The Service copies go to.'),
        port: port('Its port.'),
        percent: percent('Share of requests copied (default 100).'),
      },
      { required: ['service'] },
    ),
  },
  { description: 'A route: its matches and where matching requests go.', required: ['name', 'backends'] },
);

const subset = s.object(
  { name: dnsLabel('Unique within the policy.'), labels: labels('The pods whose labels include all of these.', 1) },
  { description: 'A named group of the target\'s pods.', required: ['name', 'labels'] },
);

const nonNegative = (description: string): Schema => s.integer({ description, minimum: 0 });

/** `TrafficPolicy.spec`. */
export const TRAFFIC_POLICY_SPEC: Schema = s.object(
  {
    targetRef: s.object(
      {
        kind: s.enum(['Service'], { description: 'Service.' }),
        name: dns1035Label('A Service of the policy\'s namespace.'),
      },
      { description: 'The Service this policy governs (calls to it, from every client in the mesh).', required: ['kind', 'name'] },
    ),
    subsets: s.list(subset, {
      description: 'Named groups of the target\'s pods.',
      maxItems: LIMITS.subsets,
      rules: [{ rule: 'self.all(x, self.exists_one(y, y.name == x.name))', message: 'subset names must be unique' }],
    }),
    routes: s.list(route, {
      description: 'First match wins; absent or empty: everything to the whole Service.',
      maxItems: LIMITS.routes,
      rules: [{ rule: 'self.all(x, self.exists_one(y, y.name == x.name))', message: 'route names must be unique' }],
    }),
    loadBalancer: s.object({ algorithm: s.enum(LB_ALGORITHMS, { description: 'Default EWMA.' }) }, { description: 'How a backend\'s endpoint is picked.' }),
    connectionPool: s.object({
      maxConnections: nonNegative('0: Envoy\'s default (1024).'),
      maxPendingRequests: nonNegative('0: Envoy\'s default (1024).'),
      maxRequestsPerConnection: nonNegative('0: unlimited.'),
    }, { description: 'Circuit-breaker limits per upstream cluster.' }),
    outlierDetection: s.object({
      consecutive5xxErrors: nonNegative('Default 5; 0 turns ejection off.'),
      interval: duration('Default 10s.'),
      baseEjectionTime: duration('Default 30s.'),
      maxEjectionPercent: s.integer({ description: 'Default 10.', minimum: 0, maximum: 100 }),
    }, { description: 'Ejects endpoints that keep failing; absent: none.' }),
    retryBudget: s.object({
      percent: percent('Default 20.'),
      minRetriesPerSecond: nonNegative('Default 10.'),
    }, { description: 'Retries add at most this share of the requests of the last 10 s, plus a rate.' }),
  },
  {
    description: 'TrafficPolicy spec (docs/configuration.md, "TrafficPolicy").',
    required: ['targetRef'],
    rules: [
      {
        rule: '!has(self.routes) || self.routes.all(r, r.backends.all(b, !has(b.subset) || (has(self.subsets) && self.subsets.exists(s, s.name == b.subset))))',
        message: 'a backend names a subset not declared in spec.subsets',
        fieldPath: '.routes',
      },
    ],
  },
);
