import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CRD_KINDS, type CrdKind, rootSchema } from '../src/crd-define';
import { parseKubeObject } from '../src/kube-parse';
import { loadCel, validateAgainst } from './crd-validate';

/** Every string of 1..maxLen tokens from `alphabet`. */
function* strings(alphabet: readonly string[], maxLen: number): Generator<string> {
  let level = [''];
  for (let n = 1; n <= maxLen; n++) {
    const next: string[] = [];
    for (const prefix of level) for (const t of alphabet) next.push(prefix + t);
    yield* next;
    level = next;
  }
}

const kind = (name: string): CrdKind => CRD_KINDS.find((k) => k.kind === name)!;
const meta = { name: 'x', namespace: 'shop' };

interface Case {
  readonly field: string;
  readonly kind: CrdKind;
  readonly alphabet: readonly string[];
  readonly maxLen: number;
  readonly build: (s: string) => Record<string, unknown>;
}

const ap = (to: Record<string, unknown>, from?: Record<string, unknown>) => ({
  apiVersion: 'weft.dev/v1alpha1', kind: 'AuthorizationPolicy', metadata: meta,
  spec: { rules: [{ ...(to ? { to: [to] } : {}), ...(from ? { from: [from] } : {}) }] },
});
const tp = (route: Record<string, unknown>, subsetLabels: Record<string, string> = { version: 'v1' }) => ({
  apiVersion: 'weft.dev/v1alpha1', kind: 'TrafficPolicy', metadata: meta,
  spec: { targetRef: { kind: 'Service', name: 'reviews' }, subsets: [{ name: 'v1', labels: subsetLabels }], routes: [{ name: 'r', backends: [{ subset: 'v1' }], ...route }] },
});

const CASES: readonly Case[] = [
  { field: 'AuthorizationPolicy to[].paths[]', kind: kind('AuthorizationPolicy'), maxLen: 4,
    alphabet: ['/', '.', 'a', '*', '?', '#', '\\', '%', '2', 'F', 'f', '4', '1', '0', ';'], build: (s) => ap({ paths: [s] }) },
  { field: 'AuthorizationPolicy to[].methods[]', kind: kind('AuthorizationPolicy'), maxLen: 4,
    alphabet: ['G', 'E', 't', '*', '-', '!', '1', ' '], build: (s) => ap({ methods: [s] }) },
  { field: 'AuthorizationPolicy to[].hosts[]', kind: kind('AuthorizationPolicy'), maxLen: 4,
    alphabet: ['a', 'B', '.', '*', '-', ':', '[', '_', '/', ' '], build: (s) => ap({ hosts: [s] }) },
  { field: 'AuthorizationPolicy from[].namespaces[]', kind: kind('AuthorizationPolicy'), maxLen: 4,
    alphabet: ['a', 'A', '-', '*', '1', '.'], build: (s) => ap({ ports: [80] }, { namespaces: [s] }) },
  { field: 'AuthorizationPolicy from[].principals[]', kind: kind('AuthorizationPolicy'), maxLen: 4,
    alphabet: ['a', '/', '*', ',', ' ', ':'], build: (s) => ap({ ports: [80] }, { principals: [s] }) },
  // Up to 5 characters: the schema refuses longer port strings, which the parser reads when they
  // are zero-padded ("000080"), a difference docs/configuration.md lists.
  { field: 'AuthorizationPolicy to[].ports[] (strings)', kind: kind('AuthorizationPolicy'), maxLen: 5,
    alphabet: ['0', '1', '6', '9', 'a', '+'], build: (s) => ap({ ports: [s] }) },
  { field: 'TrafficPolicy routes[].timeout', kind: kind('TrafficPolicy'), maxLen: 5,
    alphabet: ['0', '1', '.', 's', 'm', 'h', 'ms', 'u'], build: (s) => tp({ timeout: s }) },
  { field: 'TrafficPolicy match[].method', kind: kind('TrafficPolicy'), maxLen: 3,
    alphabet: ['G', 'e', '*', '-', '1', ' ', '/'], build: (s) => tp({ match: [{ method: s }] }) },
  { field: 'TrafficPolicy match[].headers[].name', kind: kind('TrafficPolicy'), maxLen: 3,
    alphabet: [':', 'a', 'A', '-', ' ', '*', '/', '"'], build: (s) => tp({ match: [{ headers: [{ name: s, present: true }] }] }) },
  { field: 'TrafficPolicy match[].path.prefix', kind: kind('TrafficPolicy'), maxLen: 3,
    alphabet: ['/', 'a', '.', '?'], build: (s) => tp({ match: [{ path: { prefix: s } }] }) },
  { field: 'TrafficPolicy subsets[].labels (keys)', kind: kind('TrafficPolicy'), maxLen: 4,
    alphabet: ['a', 'A', '.', '/', '-', '_', '1'], build: (s) => tp({}, { [s]: 'v1' }) },
  { field: 'TrafficPolicy subsets[].labels (values)', kind: kind('TrafficPolicy'), maxLen: 4,
    alphabet: ['a', 'A', '.', '/', '-', '_', '1', ' '], build: (s) => tp({}, { version: s }) },
  { field: 'PeerAuthentication portLevelMtls keys', kind: kind('PeerAuthentication'), maxLen: 5,
    alphabet: ['0', '1', '6', '9', 'a', '+'],
    build: (s) => ({ apiVersion: 'weft.dev/v1alpha1', kind: 'PeerAuthentication', metadata: meta, spec: { selector: { matchLabels: { app: 'a' } }, portLevelMtls: { [s]: { mode: 'STRICT' } } } }) },
];

test('the API server (schema and CEL) and the parser agree on every short value of each patterned field', async () => {
  const cel = await loadCel();
  for (const c of CASES) {
    const schema = rootSchema(c.kind);
    const disagree: string[] = [];
    let n = 0;
    for (const s of strings(c.alphabet, c.maxLen)) {
      n++;
      const obj = c.build(s);
      const parser = parseKubeObject(obj).kind === 'object';
      const server = validateAgainst(schema, obj, cel).length === 0;
      if (parser !== server && disagree.length < 8) disagree.push(`${JSON.stringify(s)}: parser ${parser ? 'accepts' : 'refuses'}, API server ${server ? 'accepts' : 'refuses'}`);
    }
    assert.deepEqual(disagree, [], `${c.field} (${n} values)`);
  }
});
