/**
 * Schema pieces shared by the three `weft.dev` CRDs: Kubernetes names, label maps, durations,
 * selectors and `status.conditions`. Each mirrors a check of `kube-parse-fields.ts`; where the
 * schema is stricter (length and count limits, which CEL's cost budget needs) docs/configuration.md,
 * "Validation layers", says so.
 */
import { type Schema, s } from './crd-schema';

/** Upper bounds on list sizes and string lengths (the parser has none; the API server needs them). */
export const LIMITS = {
  subsets: 32,
  routes: 64,
  matches: 16,
  headers: 16,
  backends: 16,
  statusCodes: 32,
  labels: 64,
  rules: 64,
  entries: 32,
  values: 64,
  ports: 64,
  conditions: 8,
  /** Path, header values, regexes, principals, hosts. */
  value: 1024,
  headerName: 256,
  method: 64,
  duration: 64,
  labelValue: 63,
} as const;

/** Kubernetes' name rules as OpenAPI patterns (the regexes of `names` in kube-parse-fields.ts). */
export const PATTERNS = {
  dnsLabel: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
  dns1035Label: '^[a-z]([-a-z0-9]*[a-z0-9])?$',
  labelValue: '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$',
  /** One or more `<number><unit>` parts, as `parseDuration` reads them; `"0"` alone is not positive. */
  duration: '^(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ms|h|m|s))+$',
} as const;

export function dnsLabel(description: string): Schema {
  return s.string({ description, minLength: 1, maxLength: 63, pattern: PATTERNS.dnsLabel });
}

export function dns1035Label(description: string): Schema {
  return s.string({ description, minLength: 1, maxLength: 63, pattern: PATTERNS.dns1035Label });
}

/**
 * A positive duration such as `250ms`, `1.5s` or `1m30s`. The pattern is the parser's grammar;
 * "positive" is a CEL rule: a duration of that grammar is positive exactly when it has a
 * non-zero digit.
 */
export function duration(description: string): Schema {
  return s.string({
    description,
    maxLength: LIMITS.duration,
    pattern: PATTERNS.duration,
    rules: [{ rule: "self.matches('[1-9]')", message: 'must be a positive duration' }],
  });
}

/**
 * A Kubernetes label key (`names.labelKey`): an optional DNS-subdomain prefix (at most 253) and
 * `/`, then a name of at most 63.
 */
const LABEL_KEY =
  '^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';

/** A map of label values; the keys are checked by a CEL rule (a schema cannot reach map keys). */
export function labels(description: string, minProperties?: number): Schema {
  return s.map(s.string({ maxLength: LIMITS.labelValue, pattern: PATTERNS.labelValue }), {
    description,
    maxProperties: LIMITS.labels,
    rules: [
      {
        rule: `self.all(k, k.indexOf('/') <= 253 && k.matches('${LABEL_KEY}'))`,
        message: 'every key must be a label key: an optional DNS-subdomain prefix and /, then a name of at most 63 (letters, digits, -, _, .)',
      },
    ],
    ...(minProperties !== undefined ? { minProperties } : {}),
  });
}

/** `spec.selector` of PeerAuthentication and AuthorizationPolicy. */
export function selector(description: string): Schema {
  return s.object({ matchLabels: labels('The pods (of the policy\'s namespace) it applies to; empty: all of them.') }, { description });
}

/** A percentage, 0–100, decimals allowed. */
export function percent(description: string): Schema {
  return s.number({ description, minimum: 0, maximum: 100 });
}

export function port(description: string): Schema {
  return s.integer({ description, minimum: 1, maximum: 65535 });
}

/** `status`, written by the control plane (leader) through the status subresource. */
export const STATUS: Schema = s.object(
  {
    conditions: s.list(
      s.object(
        {
          type: s.string({ description: '`Accepted`, `ResolvedRefs`, ...', minLength: 1, maxLength: 316 }),
          status: s.enum(['True', 'False', 'Unknown']),
          reason: s.string({ description: 'CamelCase, such as `TargetNotFound` or `Conflicted`.', maxLength: 1024 }),
          message: s.string({ maxLength: 32768 }),
          lastTransitionTime: s.string({ format: 'date-time', maxLength: 64 }),
          observedGeneration: s.integer({ format: 'int64', minimum: 0 }),
        },
        { required: ['type', 'status'] },
      ),
      { description: 'Conditions, one per type.', maxItems: LIMITS.conditions, listType: 'map', mapKeys: ['type'] },
    ),
  },
  { description: 'Written by the Weft control plane.' },
);
