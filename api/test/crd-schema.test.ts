import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CRD_KINDS, type CrdKind, rootSchema } from '../src/crd-define';
import type { Schema } from '../src/crd-schema';
import { REPO_ROOT } from '../src/crd-gen';
import { parseKubeObject } from '../src/kube-parse';
import { re2Error } from '../src/kube-parse-fields';
import {
  FULL_AUTHORIZATION_POLICY, FULL_PEER_AUTHENTICATION, FULL_TRAFFIC_POLICY, REFUSED_AUTHZ_FIELDS,
  invalidFixtures, recordReads, schemaPaths, valuePaths, weftExamples,
} from './crd-samples';
import { loadCel, validateAgainst } from './crd-validate';

const kind = (name: CrdKind['kind']): CrdKind => CRD_KINDS.find((k) => k.kind === name)!;
const FULL: readonly [CrdKind, Record<string, unknown>][] = [
  [kind('TrafficPolicy'), FULL_TRAFFIC_POLICY],
  [kind('PeerAuthentication'), FULL_PEER_AUTHENTICATION],
  [kind('AuthorizationPolicy'), FULL_AUTHORIZATION_POLICY],
];
const byKind = (k: string): CrdKind => {
  const found = CRD_KINDS.find((c) => c.kind === k);
  assert.ok(found, `no CRD for kind ${k}`);
  return found;
};
/** A field (or a field under one) that the schema holds only to refuse it by name. */
const refused = (k: CrdKind, path: string): boolean =>
  k.kind === 'AuthorizationPolicy' && path.split(/[.[\]]+/).some((s) => REFUSED_AUTHZ_FIELDS.has(s));

/** Every schema node with its path (`spec.routes[].name`). */
function* nodes(schema: Schema, path: string): Generator<[string, Schema]> {
  yield [path, schema];
  for (const [k, sub] of Object.entries(schema.properties ?? {})) yield* nodes(sub, `${path}.${k}`);
  if (schema.additionalProperties) yield* nodes(schema.additionalProperties, `${path}.*`);
  if (schema.items) yield* nodes(schema.items, `${path}[]`);
}

test('every schema node is structural and bounded, as the API server and its CEL cost estimator need', () => {
  for (const k of CRD_KINDS) {
    const root = rootSchema(k);
    assert.equal(root.type, 'object');
    for (const [path, n] of nodes(root, k.kind)) {
      const where = `${path}: ${JSON.stringify(n).slice(0, 120)}`;
      if (/\.(apiVersion|kind|metadata)$/.test(path) && !path.includes('.spec')) continue;
      assert.ok(n.type !== undefined || n['x-kubernetes-int-or-string'], `untyped node ${where}`);
      if (n.type === 'object') {
        assert.ok(n.properties || n.additionalProperties || n['x-kubernetes-preserve-unknown-fields'], `object without fields ${where}`);
        assert.ok(!(n.properties && n.additionalProperties), `both properties and additionalProperties ${where}`);
        if (n.additionalProperties) assert.ok(n.maxProperties !== undefined, `unbounded map ${where}`);
        for (const r of n.required ?? []) assert.ok(n.properties?.[r], `required ${r} is not a property ${where}`);
      }
      if (n.type === 'array') {
        assert.ok(n.items, `array without items ${where}`);
        assert.ok(n.maxItems !== undefined, `array without maxItems ${where}`);
        for (const key of n['x-kubernetes-list-map-keys'] ?? []) assert.ok(n.items?.required?.includes(key), `list-map key ${key} not required ${where}`);
      }
      if (n.type === 'string') assert.ok(n.maxLength !== undefined || n.enum || n.format === 'date-time', `string without maxLength ${where}`);
      if (n['x-kubernetes-int-or-string']) assert.ok(n.maxLength !== undefined, `int-or-string without maxLength ${where}`);
      for (const rule of n['x-kubernetes-validations'] ?? []) {
        assert.ok(rule.message || rule.messageExpression, `CEL rule without message ${where}`);
        if (rule.fieldPath) assert.ok(n.properties?.[rule.fieldPath.slice(1)], `fieldPath ${rule.fieldPath} names no property ${where}`);
      }
    }
  }
});

test('every pattern and every CEL regex compiles as RE2, the API server\'s regex engine', () => {
  for (const k of CRD_KINDS) {
    for (const [path, n] of nodes(rootSchema(k), k.kind)) {
      if (n.pattern !== undefined) assert.equal(re2Error(n.pattern), undefined, `${path}: ${n.pattern}`);
      for (const rule of n['x-kubernetes-validations'] ?? []) {
        // CEL string literals know only these escapes; `\.` is a syntax error there (cel-js forgives it).
        for (const lit of rule.rule.matchAll(/'((?:[^'\\]|\\.)*)'/g)) {
          const bad = [...lit[1].matchAll(/\\(.)/g)].find((e) => !/[\\'"abfnrtv0-7xuU?`]/.test(e[1]));
          assert.equal(bad, undefined, `${path}: invalid escape ${bad?.[0]} in CEL string literal '${lit[1]}'`);
        }
        for (const m of rule.rule.matchAll(/matches\('((?:[^'\\]|\\.)*)'\)/g)) {
          const re = m[1].replace(/\\\\/g, '\\');
          assert.equal(re2Error(re), undefined, `${path}: ${re}`);
        }
      }
    }
  }
});

test('the schema and the parser know the same fields: every field the parser reads is in the schema, and it reads every schema field', () => {
  for (const [k, sample] of FULL) {
    const schema = rootSchema(k);
    const read = new Set<string>();
    const unknownToSchema: string[] = [];
    const wrapped = recordReads(sample, schema, (path, field, n) => {
      if (!path.startsWith('.spec')) return;
      read.add(`${path}.${field}`);
      if (n.properties && !n.properties[field] && !n['x-kubernetes-preserve-unknown-fields']) unknownToSchema.push(`${path}.${field}`);
    });
    const out = parseKubeObject(wrapped);
    assert.equal(out.kind, 'object', `${k.kind}: ${JSON.stringify(out)}`);
    assert.deepEqual(unknownToSchema, [], `${k.kind}: the parser reads fields the schema does not declare`);
    const notRead = schemaPaths(schema.properties!.spec, '.spec').filter((p) => !p.includes('*') && !read.has(p));
    assert.deepEqual(notRead, [], `${k.kind}: schema fields the parser never reads (or the sample does not reach)`);
  }
});

test('the fully-populated samples set every schema field, so the two checks above see all of it', () => {
  for (const [k, sample] of FULL) {
    const schema = rootSchema(k);
    const have = valuePaths(sample.spec, schema.properties!.spec, '.spec');
    const missing = schemaPaths(schema.properties!.spec, '.spec').filter((p) => !p.endsWith('.*') && !have.has(p) && !refused(k, p));
    assert.deepEqual(missing, [], `${k.kind}: fields the sample does not set`);
  }
});

test('the fully-populated samples are valid for the parser, the schema and its CEL rules', async () => {
  const cel = await loadCel();
  for (const [k, sample] of FULL) {
    assert.equal(parseKubeObject(sample).kind, 'object', JSON.stringify(parseKubeObject(sample)));
    assert.deepEqual(validateAgainst(rootSchema(k), sample, cel), [], k.kind);
  }
});

test('every weft.dev object under manifests/ and in docs/ examples passes the schema and its CEL rules (and the parser)', async () => {
  const cel = await loadCel();
  const found = weftExamples(REPO_ROOT);
  const kinds = new Set(found.map((e) => e.obj.kind));
  for (const k of CRD_KINDS) assert.ok(kinds.has(k.kind), `no example of ${k.kind} found`);
  for (const { where, obj } of found) {
    const label = `${where}: ${String(obj.kind)} ${JSON.stringify(obj.metadata)}`;
    assert.equal(parseKubeObject(obj).kind, 'object', `${label}: ${JSON.stringify(parseKubeObject(obj))}`);
    assert.deepEqual(validateAgainst(rootSchema(byKind(String(obj.kind))), obj, cel), [], label);
  }
});

test('each malformed policy of fixtures/crd-invalid is refused with its expected message, by the layer it names', async () => {
  const cel = await loadCel();
  const all = invalidFixtures(REPO_ROOT);
  assert.ok(all.length >= 40, `only ${all.length} fixtures`);
  for (const f of all) {
    const schema = rootSchema(byKind(String(f.obj.kind)));
    const schemaOnly = validateAgainst(schema, f.obj);
    const withCel = validateAgainst(schema, f.obj, cel);
    assert.ok(withCel.some((e) => e.includes(f.expect)), `${f.file}: expected "${f.expect}" among ${JSON.stringify(withCel)}`);
    if (f.layer === 'schema') {
      assert.ok(schemaOnly.some((e) => e.includes(f.expect)), `${f.file}: the OpenAPI schema alone should refuse it: ${JSON.stringify(schemaOnly)}`);
    } else {
      // A CEL fixture must pass the plain schema, so it really exercises its rule.
      assert.deepEqual(schemaOnly, [], `${f.file}: a CEL fixture the plain schema already refuses`);
    }
    const parsed = parseKubeObject(f.obj);
    assert.equal(parsed.kind, f.parserAccepts ? 'object' : 'invalid', `${f.file}: the parser ${f.parserAccepts ? 'should accept' : 'should refuse'} it: ${JSON.stringify(parsed)}`);
  }
});

test('every CEL rule of the CRDs is exercised by a fixture that expects its message', () => {
  const expects = invalidFixtures(REPO_ROOT).filter((f) => f.layer === 'cel').map((f) => f.expect);
  for (const k of CRD_KINDS) {
    for (const [path, n] of nodes(rootSchema(k), k.kind)) {
      for (const rule of n['x-kubernetes-validations'] ?? []) {
        const msg = rule.message ?? '';
        assert.ok(expects.some((e) => msg.includes(e) || e.includes(msg)), `${path}: no fixture for "${msg}" (${rule.rule})`);
      }
    }
  }
});
