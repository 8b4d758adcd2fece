/**
 * Test helper: validates a decoded object against a CRD's OpenAPI schema the way the API server
 * does (strict field validation: unknown fields are errors; null is an absent field), and
 * evaluates the `x-kubernetes-validations` CEL rules with `@marcbachmann/cel-js` (integers as
 * CEL `int`, as Kubernetes types them). Errors read `spec.routes[0].name: <message>`.
 *
 * Not the API server: CEL type checking and cost estimation, and Go's RE2 `pattern` engine, are
 * its own (replay `test/fixtures/crd-invalid/` against it for those).
 */
import type { Schema } from '../src/crd-schema';

type Cel = { evaluate(expr: string, ctx: Record<string, unknown>): unknown };
let cel: Cel | undefined;

/** Loads the CEL evaluator (an ES module) once. */
export async function loadCel(): Promise<Cel> {
  cel ??= (await import('@marcbachmann/cel-js')) as unknown as Cel;
  return cel;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const at = (path: string, key: string | number): string =>
  typeof key === 'number' ? `${path}[${key}]` : /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? (path ? `${path}.${key}` : key) : `${path}[${JSON.stringify(key)}]`;

/** The value as CEL sees it: integers of integer (or int-or-string) nodes become BigInt. */
function toCel(schema: Schema, v: unknown): unknown {
  if (v === null || v === undefined) return v;
  if (typeof v === 'number' && (schema.type === 'integer' || (schema['x-kubernetes-int-or-string'] && Number.isInteger(v)))) return BigInt(v);
  if (Array.isArray(v)) return v.map((x) => toCel(schema.items ?? {}, x));
  if (isObject(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (x === null) continue;
      const sub = schema.properties?.[k] ?? schema.additionalProperties ?? {};
      out[k] = toCel(sub, x);
    }
    return out;
  }
  return v;
}

/** The JSON type name of `v`, as the API server words it (`"string"`, `"object"`). */
function jsonType(v: unknown): string {
  return Array.isArray(v) ? 'array' : typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : v === null ? 'null' : typeof v;
}

function typeOk(schema: Schema, v: unknown): boolean {
  if (schema['x-kubernetes-int-or-string']) return (typeof v === 'number' && Number.isInteger(v)) || typeof v === 'string';
  switch (schema.type) {
    case 'object':
      return isObject(v);
    case 'array':
      return Array.isArray(v);
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'number':
      return typeof v === 'number' && Number.isFinite(v);
    case 'boolean':
      return typeof v === 'boolean';
    default:
      return true;
  }
}

/** Errors in the API server's words (`<path>: Invalid value: ...: <path> in body should match '...'`). */
function check(schema: Schema, v: unknown, path: string, errors: string[], c: Cel | undefined): void {
  const shown = typeof v === 'string' ? JSON.stringify(v) : isObject(v) || Array.isArray(v) ? `"${jsonType(v)}"` : String(v);
  const invalid = (msg: string): void => void errors.push(`${path}: Invalid value: ${shown}: ${path} in body ${msg}`);
  if (!typeOk(schema, v)) return invalid(`must be of type ${schema.type ?? 'integer-or-string'}: "${jsonType(v)}"`);
  if (schema['x-kubernetes-preserve-unknown-fields']) {
    // Anything goes below; rules on this node still run.
  } else if (typeof v === 'string') {
    const len = [...v].length;
    if (schema.enum && !schema.enum.includes(v)) {
      errors.push(`${path}: Unsupported value: ${JSON.stringify(v)}: supported values: ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`);
    }
    if (schema.minLength !== undefined && len < schema.minLength) invalid(`should be at least ${schema.minLength} chars long`);
    if (schema.maxLength !== undefined && len > schema.maxLength) errors.push(`${path}: Too long: may not be more than ${schema.maxLength} bytes`);
    if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(v)) invalid(`should match '${schema.pattern}'`);
  } else if (typeof v === 'number') {
    if (schema.minimum !== undefined && v < schema.minimum) invalid(`should be greater than or equal to ${schema.minimum}`);
    if (schema.maximum !== undefined && v > schema.maximum) invalid(`should be less than or equal to ${schema.maximum}`);
  } else if (typeof v === 'boolean') {
    if (schema.enum && !schema.enum.includes(v)) errors.push(`${path}: Unsupported value: ${v}`);
  } else if (Array.isArray(v)) {
    if (schema.minItems !== undefined && v.length < schema.minItems) invalid(`should have at least ${schema.minItems} items`);
    if (schema.maxItems !== undefined && v.length > schema.maxItems) errors.push(`${path}: Too many: ${v.length}: must have at most ${schema.maxItems} items`);
    v.forEach((x, i) => check(schema.items ?? {}, x, at(path, i), errors, c));
    const keys = schema['x-kubernetes-list-map-keys'];
    if (schema['x-kubernetes-list-type'] === 'map' && keys) {
      const seen = new Set<string>();
      v.forEach((x, i) => {
        const key = JSON.stringify(keys.map((k) => (isObject(x) ? x[k] : undefined)));
        if (seen.has(key)) errors.push(`${at(path, i)}: Duplicate value: ${key}`);
        seen.add(key);
      });
    }
  } else if (isObject(v)) {
    const present = Object.keys(v).filter((k) => v[k] !== null && v[k] !== undefined);
    if (schema.minProperties !== undefined && present.length < schema.minProperties) invalid(`should have at least ${schema.minProperties} properties`);
    if (schema.maxProperties !== undefined && present.length > schema.maxProperties) invalid(`should have at most ${schema.maxProperties} properties`);
    for (const r of schema.required ?? []) if (!present.includes(r)) errors.push(`${at(path, r)}: Required value`);
    for (const k of present) {
      const sub = schema.properties?.[k] ?? schema.additionalProperties;
      // Strict field validation (kubectl's default) refuses what the schema does not declare.
      if (sub === undefined) errors.push(`unknown field ${JSON.stringify(at(path, k))}`);
      else check(sub, v[k], at(path, k), errors, c);
    }
  }
  if (c !== undefined) {
    for (const rule of schema['x-kubernetes-validations'] ?? []) {
      let ok: unknown;
      try {
        ok = c.evaluate(rule.rule, { self: toCel(schema, v) });
      } catch (e) {
        ok = `error: ${(e as Error).message}`;
      }
      const where = rule.fieldPath ? path + rule.fieldPath : path;
      if (ok !== true) errors.push(`${where}: Invalid value: ${rule.message ?? `failed rule: ${rule.rule}`}${ok === false ? '' : ` (${String(ok)})`}`);
    }
  }
}

/**
 * Every error the schema (and, with `c`, its CEL rules) finds in `value`. The root is checked
 * as the API server sees it: `apiVersion`, `kind` and `metadata` are its own business.
 */
export function validateAgainst(schema: Schema, value: unknown, c?: Cel): string[] {
  const errors: string[] = [];
  // metadata is the API server's own (ObjectMeta), not the CRD schema's.
  const body = isObject(value) ? Object.fromEntries(Object.entries(value).filter(([k]) => k !== 'metadata')) : value;
  check(schema, body, '', errors, c);
  return errors;
}
