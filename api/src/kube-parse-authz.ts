/**
 * The `weft.dev/v1alpha1 AuthorizationPolicy` parser: a structural schema plus what a schema
 * cannot say (value patterns, normalized paths, ports, CIDRs). docs/configuration.md,
 * "AuthorizationPolicy", is the contract. Both entry forms are accepted: SPEC.md's flat one
 * (`from: [{principals: [...]}]`, `to: [{paths: [...]}]`) and Istio's wrapped one
 * (`from: [{source: {...}}]`, `to: [{operation: {...}}]`).
 */
import { isIP } from 'node:net';
import type { ObjectMeta } from './kube-types';
import type { AuthorizationPolicy, AuthzOperation, AuthzRule, AuthzSource } from './kube-types-authz';
import { FieldChecker, absent } from './kube-parse-fields';

const SPEC_FIELDS = ['selector', 'action', 'rules', 'provider', 'targetRef', 'targetRefs'];
export const SOURCE_FIELDS = ['principals', 'notPrincipals', 'namespaces', 'notNamespaces', 'ipBlocks', 'notIpBlocks'] as const;
export const OPERATION_FIELDS = ['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'] as const;
/** Istio fields this version does not implement: a clear error rather than "unknown field". */
export const UNSUPPORTED: Readonly<Record<string, string>> = {
  requestPrincipals: 'request principals (JWT) are not supported by this version',
  notRequestPrincipals: 'request principals (JWT) are not supported by this version',
  remoteIpBlocks: 'remoteIpBlocks (X-Forwarded-For) is not supported by this version; use ipBlocks',
  notRemoteIpBlocks: 'notRemoteIpBlocks (X-Forwarded-For) is not supported by this version; use notIpBlocks',
};
const METHOD = /^[A-Z][A-Z0-9!#$%&'+.^_`|~-]*$/;
const HOST = /^[a-z0-9.\-:[\]_]+$/i;
const NAMESPACE = /^[a-z0-9-]+$/;

/** Parses an AuthorizationPolicy's `spec`; `c` collects the errors. */
export function parseAuthorizationPolicy(meta: ObjectMeta, raw: Record<string, unknown>, c: FieldChecker): AuthorizationPolicy {
  const spec = c.object(raw.spec, 'spec', { fields: SPEC_FIELDS }) ?? {};
  if (!absent(spec.provider)) c.error('spec.provider', 'CUSTOM authorization providers are not supported by this version');
  if (!absent(spec.targetRef) || !absent(spec.targetRefs)) c.error(absent(spec.targetRef) ? 'spec.targetRefs' : 'spec.targetRef', 'not supported by this version: select workloads with spec.selector.matchLabels');
  let selector: Record<string, string> | undefined;
  const sel = c.object(spec.selector, 'spec.selector', { fields: ['matchLabels'] });
  if (sel !== undefined) selector = c.stringMap(sel.matchLabels, 'spec.selector.matchLabels', true);
  const action = absent(spec.action) ? 'ALLOW' : c.oneOf(spec.action, 'spec.action', ['ALLOW', 'DENY'] as const);
  if (spec.action === 'AUDIT' || spec.action === 'CUSTOM') c.error('spec.action', `${spec.action} is not supported by this version (ALLOW or DENY)`);
  const rules = (c.array(spec.rules, 'spec.rules') ?? []).map((r, i) => parseRule(r, `spec.rules[${i}]`, c));
  return {
    kind: 'AuthorizationPolicy',
    meta,
    ...(selector && Object.keys(selector).length ? { selector } : {}),
    action: action ?? 'ALLOW',
    rules: rules.filter((r): r is AuthzRule => r !== undefined),
  };
}

function parseRule(v: unknown, p: string, c: FieldChecker): AuthzRule | undefined {
  const r = c.object(v, p, { required: true, fields: ['from', 'to', 'when'] });
  if (r === undefined) return undefined;
  if (!absent(r.when)) c.error(`${p}.when`, 'conditions (when) are not supported by this version');
  const from = (c.array(r.from, `${p}.from`) ?? []).map((e, i) => entry(e, `${p}.from[${i}]`, 'source', SOURCE_FIELDS, c, source));
  const to = (c.array(r.to, `${p}.to`) ?? []).map((e, i) => entry(e, `${p}.to[${i}]`, 'operation', OPERATION_FIELDS, c, operation));
  return {
    ...(from.length ? { from: from.filter((x): x is AuthzSource => x !== undefined) } : {}),
    ...(to.length ? { to: to.filter((x): x is AuthzOperation => x !== undefined) } : {}),
  };
}

/** A `from`/`to` entry, flat or wrapped in `source`/`operation`; it must set at least one field. */
function entry<T>(
  v: unknown,
  p: string,
  wrapper: string,
  fields: readonly string[],
  c: FieldChecker,
  read: (o: Record<string, unknown>, p: string, c: FieldChecker) => T,
): T | undefined {
  let o = c.object(v, p, { required: true, fields: [wrapper, ...fields, ...Object.keys(UNSUPPORTED)] });
  if (o === undefined) return undefined;
  let at = p;
  if (!absent(o[wrapper])) {
    if (Object.keys(o).length > 1) c.error(p, `either ${wrapper}: {...} (Istio's form) or its fields directly, not both`);
    at = `${p}.${wrapper}`;
    o = c.object(o[wrapper], at, { fields: [...fields, ...Object.keys(UNSUPPORTED)] }) ?? {};
  }
  for (const [k, why] of Object.entries(UNSUPPORTED)) if (!absent(o[k])) c.error(`${at}.${k}`, why);
  if (!fields.some((f) => !absent(o![f]))) c.error(at, `must set at least one of ${fields.join(', ')} (omit the entry to match anything)`);
  return read(o, at, c);
}

function source(o: Record<string, unknown>, p: string, c: FieldChecker): AuthzSource {
  const out: Record<string, readonly string[]> = {};
  const set = (k: string, list: readonly string[] | undefined): void => {
    if (list) out[k] = list;
  };
  for (const k of ['principals', 'notPrincipals']) set(k, values(o[k], `${p}.${k}`, c, principalCheck));
  for (const k of ['namespaces', 'notNamespaces']) set(k, values(o[k], `${p}.${k}`, c, patternCheck('a namespace', (s) => NAMESPACE.test(s))));
  for (const k of ['ipBlocks', 'notIpBlocks']) set(k, values(o[k], `${p}.${k}`, c, cidrCheck, false));
  return out;
}

function operation(o: Record<string, unknown>, p: string, c: FieldChecker): AuthzOperation {
  const out: Record<string, readonly (string | number)[]> = {};
  const set = (k: string, list: readonly (string | number)[] | undefined): void => {
    if (list) out[k] = list;
  };
  for (const k of ['hosts', 'notHosts']) set(k, values(o[k], `${p}.${k}`, c, patternCheck('a host (lower case; matching ignores case)', (s) => HOST.test(s)))?.map((h) => h.toLowerCase()));
  for (const k of ['ports', 'notPorts']) set(k, ports(o[k], `${p}.${k}`, c));
  for (const k of ['methods', 'notMethods']) set(k, values(o[k], `${p}.${k}`, c, patternCheck('an HTTP method in upper case (GET)', (s) => METHOD.test(s))));
  for (const k of ['paths', 'notPaths']) set(k, values(o[k], `${p}.${k}`, c, pathCheck));
  return out;
}

/** A list of non-empty strings, each passing `check`; `[]` is an error (omit the field instead). */
function values(v: unknown, p: string, c: FieldChecker, check: (s: string) => string | undefined, patterns = true): string[] | undefined {
  const list = c.array(v, p);
  if (list === undefined) return undefined;
  if (list.length === 0) return c.error(p, 'must list at least one value (omit the field to match anything)'), undefined;
  const out: string[] = [];
  list.forEach((x, i) => {
    const s = c.string(x, `${p}[${i}]`, { required: true, check: patterns ? (s) => wildcardError(s) ?? check(s) : check });
    if (s !== undefined) out.push(s);
  });
  return out;
}

/** `*` alone, `*suffix`, `prefix*` or an exact value: one `*`, at either end. */
function wildcardError(s: string): string | undefined {
  const inner = s === '*' ? '' : s.startsWith('*') ? s.slice(1) : s.endsWith('*') ? s.slice(0, -1) : s;
  return inner.includes('*') ? 'a value may hold one * only, at its start (suffix match) or end (prefix match), or be * alone' : undefined;
}

/** The part of a pattern value that must look like a real value (`*` stripped). */
const bare = (s: string): string => (s === '*' ? '' : s.startsWith('*') ? s.slice(1) : s.endsWith('*') ? s.slice(0, -1) : s);

function patternCheck(what: string, ok: (s: string) => boolean): (s: string) => string | undefined {
  return (s) => {
    const b = bare(s);
    return b === '' || ok(b) ? undefined : `must be ${what}, optionally with * at its start or end`;
  };
}

function principalCheck(s: string): string | undefined {
  return /[\s,]/.test(s) ? 'must be a SPIFFE ID such as spiffe://cluster.local/ns/shop/sa/frontend (or cluster.local/ns/shop/sa/frontend)' : undefined;
}

/**
 * Paths are matched against the normalized path (docs/http-safety.md), without the query string:
 * a value that normalization would change can never match, so it is refused here.
 */
function pathCheck(s: string): string | undefined {
  if (s === '*' || s.startsWith('*')) return s.includes('?') ? 'paths match without the query string: remove ?...' : undefined;
  if (!s.startsWith('/')) return 'must start with / (or be *, or *suffix)';
  const b = bare(s);
  if (b.includes('?')) return 'paths match without the query string: remove ?...';
  if (b.includes('#') || b.includes('\\')) return 'must not hold # or \\ (such requests are refused before authorization)';
  if (/\/\/|\/\.\.?(\/|$)/.test(b)) return 'must be a normalized path: no //, /./ or /../ (requests are matched after normalization, which removes them)';
  for (const m of b.matchAll(/%(..)?/g)) {
    const hex = m[1] ?? '';
    if (!/^[0-9A-F]{2}$/.test(hex)) return 'percent-escapes must be two upper-case hex digits (%3A), as in the normalized path';
    const ch = String.fromCharCode(parseInt(hex, 16));
    if (/[A-Za-z0-9\-._~/\\]/.test(ch) || hex === '00') return `%${hex} never appears in a normalized path (it is decoded, or refused): write the character itself`;
  }
  return undefined;
}

function cidrCheck(s: string): string | undefined {
  const [ip, len, extra] = s.split('/');
  const v = isIP(ip ?? '');
  if (v === 0 || extra !== undefined) return 'must be an IP address or a CIDR range (10.0.0.0/8)';
  if (len === undefined) return undefined;
  const n = Number(len);
  return /^\d+$/.test(len) && n <= (v === 4 ? 32 : 128) ? undefined : `prefix length must be between 0 and ${v === 4 ? 32 : 128}`;
}

/** Ports as numbers (SPEC.md) or numeric strings (Istio), 1–65535. */
function ports(v: unknown, p: string, c: FieldChecker): number[] | undefined {
  const list = c.array(v, p);
  if (list === undefined) return undefined;
  if (list.length === 0) return c.error(p, 'must list at least one port (omit the field to match any port)'), undefined;
  const out: number[] = [];
  list.forEach((x, i) => {
    const n = typeof x === 'string' && /^\d+$/.test(x) ? Number(x) : x;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) c.error(`${p}[${i}]`, 'must be a port number between 1 and 65535');
    else out.push(n);
  });
  return out;
}

