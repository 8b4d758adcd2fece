/**
 * The OpenAPI schema of `AuthorizationPolicy.spec` (types: `kube-types-authz.ts`; checks and
 * messages: `kube-parse-authz.ts`). Value patterns (one `*` at either end, normalized paths,
 * ports) are OpenAPI patterns; CEL says "source/operation or flat fields, not both" and "at least
 * one field". Istio fields this version does not implement (`when`, `requestPrincipals`,
 * `provider`, `targetRef`...) are in the schema only to be refused by name: were they unknown,
 * an API server not asked for strict field validation would prune them silently, and a rule
 * would match more than its author wrote.
 */
import { OPERATION_FIELDS, SOURCE_FIELDS, UNSUPPORTED } from './kube-parse-authz';
import { type CelRule, type Schema, celAnyOf, s } from './crd-schema';
import { LIMITS, selector } from './crd-fields';

/** A value that is exact, `*`, `*suffix` or `prefix*`, whose bare part matches `bare`. */
const wildcard = (bare: string): string => `^(\\*|\\*?${bare}|${bare}\\*)$`;
/**
 * A percent-escape a normalized path keeps: two upper-case hex digits, never `%00`, `/`, `\\` or
 * an unreserved character (letters, digits, `-`, `.`, `_`, `~`), which normalization decodes.
 */
const ESCAPE = '%(0[1-9A-F]|1[0-9A-F]|2[0-9A-C]|3[A-F]|40|5[BDE]|60|7[BCDF]|[89A-F][0-9A-F])';
/** A path character, and one that is not a dot. */
const PCHAR = `([^/?#\\\\*%]|${ESCAPE})`;
const PCHAR_NOT_DOT = `([^/.?#\\\\*%]|${ESCAPE})`;
/** A path segment other than "", "." and ".." (those a normalized path never holds). */
const SEGMENT = `(${PCHAR_NOT_DOT}|\\.${PCHAR_NOT_DOT}|\\.\\.${PCHAR})${PCHAR}*`;

const PATTERNS = {
  principal: '^(\\*?[^*\\s,]*|[^*\\s,]+\\*)$',
  namespace: wildcard('[a-z0-9-]+'),
  ipBlock: '^[0-9A-Fa-f:.]+(/[0-9]{1,3})?$',
  host: wildcard('[a-zA-Z0-9.\\-:\\[\\]_]+'),
  method: wildcard("[A-Z][A-Z0-9!#$%&'+.^_`|~-]*"),
  /** `*suffix`, or a normalized path (no //, /./, /../, ?, #, \, decodable escapes) optionally ending in `*`. */
  path: `^(\\*[^*?]*|/(${SEGMENT}(/${SEGMENT})*/?)?\\*?)$`,
} as const;

const values = (description: string, pattern: string, maxLength: number = LIMITS.value): Schema =>
  s.list(s.string({ minLength: 1, maxLength, pattern }), { description, minItems: 1, maxItems: LIMITS.values });

const ports = (description: string): Schema =>
  s.list(
    s.intOrString({
      pattern: '^[0-9]{1,5}$',
      maxLength: 5,
      rules: [
        {
          rule: 'type(self) == int ? (self >= 1 && self <= 65535) : (int(self) >= 1 && int(self) <= 65535)',
          message: 'must be a port number between 1 and 65535',
        },
      ],
    }),
    { description, minItems: 1, maxItems: LIMITS.values },
  );

/** CEL rules refusing the Istio fields this version does not implement, with the parser's words. */
const unsupported = (): CelRule[] =>
  Object.entries(UNSUPPORTED).map(([field, message]) => ({ rule: `!has(self.${field})`, message }));

const UNSUPPORTED_PROPS = Object.fromEntries(
  Object.keys(UNSUPPORTED).map((k) => [k, s.list(s.string({ maxLength: LIMITS.value }), { description: 'Not supported: refused.', maxItems: LIMITS.values })]),
);

const SOURCE_PROPS: Record<(typeof SOURCE_FIELDS)[number], Schema> = {
  principals: values('SPIFFE IDs of callers (spiffe://td/ns/x/sa/y or td/ns/x/sa/y).', PATTERNS.principal),
  notPrincipals: values('None of these.', PATTERNS.principal),
  namespaces: values('Namespaces of callers (from their SPIFFE ID).', PATTERNS.namespace, 63),
  notNamespaces: values('None of these.', PATTERNS.namespace, 63),
  ipBlocks: values('Peer IPs or CIDRs.', PATTERNS.ipBlock, 64),
  notIpBlocks: values('None of these.', PATTERNS.ipBlock, 64),
};

const OPERATION_PROPS: Record<(typeof OPERATION_FIELDS)[number], Schema> = {
  hosts: values('Host / :authority (matching ignores case).', PATTERNS.host, 253),
  notHosts: values('None of these.', PATTERNS.host, 253),
  ports: ports('App ports, numbers or numeric strings.'),
  notPorts: ports('None of these.'),
  methods: values('HTTP methods, upper case.', PATTERNS.method, LIMITS.method),
  notMethods: values('None of these.', PATTERNS.method, LIMITS.method),
  paths: values('Normalized paths, without the query string.', PATTERNS.path),
  notPaths: values('None of these.', PATTERNS.path),
};

/**
 * A `from` or `to` entry: the fields directly (SPEC.md) or wrapped in `source` / `operation`
 * (Istio), not both; at least one field either way.
 */
function entry(wrapper: string, fields: readonly string[], props: Record<string, Schema>, description: string): Schema {
  const atLeastOne = `must set at least one of ${fields.join(', ')} (omit the entry to match anything)`;
  const inner = s.object({ ...props, ...UNSUPPORTED_PROPS }, {
    rules: [{ rule: celAnyOf(fields), message: atLeastOne }, ...unsupported()],
  });
  const others = [...fields, ...Object.keys(UNSUPPORTED)];
  return s.object({ [wrapper]: inner, ...props, ...UNSUPPORTED_PROPS }, {
    description,
    rules: [
      { rule: `!has(self.${wrapper}) || !(${celAnyOf(others)})`, message: `either ${wrapper}: {...} (Istio's form) or its fields directly, not both` },
      { rule: `has(self.${wrapper}) || ${celAnyOf(fields)}`, message: atLeastOne },
      ...unsupported(),
    ],
  });
}

const rule = s.object(
  {
    from: s.list(entry('source', SOURCE_FIELDS, SOURCE_PROPS, 'A source; every field set must match.'), {
      description: 'Any entry may match; absent or empty: any source.',
      maxItems: LIMITS.entries,
    }),
    to: s.list(entry('operation', OPERATION_FIELDS, OPERATION_PROPS, 'An operation; every field set must match.'), {
      description: 'Any entry may match; absent or empty: any operation.',
      maxItems: LIMITS.entries,
    }),
    when: s.list(s.anyObject(), { description: 'Not supported: refused.', maxItems: LIMITS.entries }),
  },
  {
    description: 'Matches when any from entry and any to entry match; {} matches everything.',
    rules: [{ rule: '!has(self.when)', message: 'conditions (when) are not supported by this version' }],
  },
);

/** `AuthorizationPolicy.spec`. */
export const AUTHORIZATION_POLICY_SPEC: Schema = s.object(
  {
    selector: selector('Omitted: every pod of the namespace (in the root namespace: of the mesh).'),
    action: s.enum(['ALLOW', 'DENY'], { description: 'Default ALLOW; DENY policies are evaluated first.' }),
    rules: s.list(rule, { description: 'Absent or empty: matches nothing (ALLOW: deny-all; DENY: denies nothing).', maxItems: LIMITS.rules }),
    provider: s.anyObject({ description: 'Not supported: refused.' }),
    targetRef: s.anyObject({ description: 'Not supported: refused (use selector).' }),
    targetRefs: s.list(s.anyObject(), { description: 'Not supported: refused (use selector).', maxItems: 16 }),
  },
  {
    description: 'AuthorizationPolicy spec (docs/configuration.md, "AuthorizationPolicy").',
    rules: [
      { rule: '!has(self.provider)', message: 'CUSTOM authorization providers are not supported by this version' },
      { rule: '!has(self.targetRef) && !has(self.targetRefs)', message: 'targetRef: not supported by this version: select workloads with spec.selector.matchLabels' },
    ],
  },
);
