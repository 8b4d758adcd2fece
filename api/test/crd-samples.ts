/**
 * Test fixtures, shared by api/test/crd-*.test.ts and e2e/test/crds-apiserver.test.ts: one
 * fully-populated, valid object per CRD kind — every field of the schema set somewhere
 * (`crd-schema.test.ts` checks that), both forms of AuthorizationPolicy entries; the repository's
 * examples; the malformed policies of `fixtures/crd-invalid/`; a helper that records which fields
 * a parser reads.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { Schema } from '../src/crd-schema';

export const FULL_TRAFFIC_POLICY = {
  apiVersion: 'weft.dev/v1alpha1',
  kind: 'TrafficPolicy',
  metadata: { name: 'reviews', namespace: 'shop', labels: { app: 'reviews' }, annotations: { note: 'x' } },
  spec: {
    targetRef: { kind: 'Service', name: 'reviews' },
    subsets: [
      { name: 'v1', labels: { version: 'v1' } },
      { name: 'v2', labels: { version: 'v2', 'app.kubernetes.io/name': 'reviews' } },
    ],
    routes: [
      {
        name: 'canary',
        match: [
          { path: { prefix: '/api' }, method: 'GET', headers: [{ name: 'x-canary', exact: 'true' }, { name: ':authority', present: true }] },
          { path: { exact: '/healthz' }, headers: [{ name: 'x-user', prefix: 'test-' }] },
          { path: { regex: '/items/[0-9]+' }, headers: [{ name: 'x-id', regex: '[a-z]+' }] },
        ],
        backends: [{ subset: 'v2' }],
      },
      {
        name: 'default',
        backends: [
          { subset: 'v1', weight: 80 },
          { service: 'reviews-next', port: 9080, weight: 20 },
        ],
        timeout: '3s',
        retries: {
          attempts: 3,
          perTryTimeout: '1s',
          retryOn: ['5xx', 'gateway-error', 'reset', 'connect-failure', 'retriable-status-codes', 'unavailable'],
          retriableStatusCodes: [503],
          backoff: { baseInterval: '25ms', maxInterval: '250ms' },
          retryNonIdempotent: false,
          bufferLimitBytes: 65536,
        },
        fault: { delay: { percent: 10, fixedDelay: '100ms' }, abort: { percent: 1.5, httpStatus: 503 } },
        mirror: { service: 'reviews-shadow', port: 9080, percent: 5 },
      },
    ],
    loadBalancer: { algorithm: 'LeastRequest' },
    connectionPool: { maxConnections: 1024, maxPendingRequests: 1024, maxRequestsPerConnection: 0 },
    outlierDetection: { consecutive5xxErrors: 5, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 50 },
    retryBudget: { percent: 20, minRetriesPerSecond: 10 },
  },
  status: {
    conditions: [
      { type: 'Accepted', status: 'True', reason: 'Accepted', message: 'ok', lastTransitionTime: '2026-01-01T00:00:00Z', observedGeneration: 1 },
    ],
  },
};

export const FULL_PEER_AUTHENTICATION = {
  apiVersion: 'weft.dev/v1alpha1',
  kind: 'PeerAuthentication',
  metadata: { name: 'reviews', namespace: 'shop' },
  spec: {
    selector: { matchLabels: { app: 'reviews' } },
    mtls: { mode: 'STRICT' },
    portLevelMtls: { '9090': { mode: 'PERMISSIVE' }, '15000': { mode: 'DISABLE' } },
  },
};

export const FULL_AUTHORIZATION_POLICY = {
  apiVersion: 'weft.dev/v1alpha1',
  kind: 'AuthorizationPolicy',
  metadata: { name: 'reviews-readers', namespace: 'shop' },
  spec: {
    selector: { matchLabels: { app: 'reviews' } },
    action: 'DENY',
    rules: [
      {
        from: [
          {
            principals: ['spiffe://cluster.local/ns/shop/sa/frontend', 'cluster.local/ns/shop/sa/*'],
            notPrincipals: ['*/sa/robot'],
            namespaces: ['shop', 'team-*'],
            notNamespaces: ['*-test'],
            ipBlocks: ['10.0.0.0/8', 'fd00::1'],
            notIpBlocks: ['10.1.2.3'],
          },
          { source: { principals: ['*'], notPrincipals: ['x'], namespaces: ['a'], notNamespaces: ['b'], ipBlocks: ['127.0.0.1'], notIpBlocks: ['::1/128'] } },
        ],
        to: [
          {
            hosts: ['reviews.shop.svc.cluster.local', '*.example.com'],
            notHosts: ['admin.*'],
            ports: [9080, '9090'],
            notPorts: ['15000'],
            methods: ['GET', 'HEAD'],
            notMethods: ['DELETE'],
            paths: ['/api/*', '/', '*.png', '/a/b;c/%20d'],
            notPaths: ['/admin'],
          },
          { operation: { hosts: ['x'], notHosts: ['y'], ports: [1], notPorts: [2], methods: ['*'], notMethods: ['PUT'], paths: ['/x'], notPaths: ['/y/*'] } },
        ],
      },
      {},
    ],
  },
};

/** AuthorizationPolicy fields the schema holds only to refuse them by name (their presence is an error). */
export const REFUSED_AUTHZ_FIELDS: ReadonlySet<string> = new Set([
  'provider', 'targetRef', 'targetRefs', 'when', 'requestPrincipals', 'notRequestPrincipals', 'remoteIpBlocks', 'notRemoteIpBlocks',
]);

/**
 * `raw` wrapped in proxies that call `onRead(objectPath, field)` for each field a reader asks an
 * object for (present or not), with list indices written `[]`. Children of map nodes (schema
 * `additionalProperties`) are reported as `*`.
 */
export function recordReads(raw: unknown, schema: Schema, onRead: (path: string, field: string, node: Schema) => void, path = ''): unknown {
  if (Array.isArray(raw)) return raw.map((x) => recordReads(x, schema.items ?? {}, onRead, `${path}[]`));
  if (typeof raw !== 'object' || raw === null) return raw;
  const isMap = schema.additionalProperties !== undefined;
  const wrapped: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    const sub = schema.properties?.[k] ?? schema.additionalProperties ?? {};
    wrapped[k] = recordReads(v, sub, onRead, `${path}.${isMap ? '*' : k}`);
  }
  return new Proxy(wrapped, {
    get(target, key, receiver) {
      if (typeof key === 'string' && !isMap) onRead(path, key, schema);
      return Reflect.get(target, key, receiver);
    },
  });
}

/** Every field path of `schema` (`.spec.routes[].name`), maps as `.*`. */
export function schemaPaths(schema: Schema, path = '', out: string[] = []): string[] {
  if (schema.properties) {
    for (const [k, sub] of Object.entries(schema.properties)) {
      out.push(`${path}.${k}`);
      schemaPaths(sub, `${path}.${k}`, out);
    }
  }
  if (schema.additionalProperties) schemaPaths(schema.additionalProperties, `${path}.*`, out);
  if (schema.items) schemaPaths(schema.items, `${path}[]`, out);
  return out;
}

/** Every field path set in `v`, in the notation of `schemaPaths` (maps per `schema`). */
export function valuePaths(v: unknown, schema: Schema, path = '', out = new Set<string>()): Set<string> {
  if (Array.isArray(v)) v.forEach((x) => valuePaths(x, schema.items ?? {}, `${path}[]`, out));
  else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) {
      const isMap = schema.additionalProperties !== undefined;
      const p = `${path}.${isMap ? '*' : k}`;
      if (!isMap) out.add(p);
      valuePaths(x, schema.properties?.[k] ?? schema.additionalProperties ?? {}, p, out);
    }
  }
  return out;
}

/** A `weft.dev` object found in the repository, and where. */
export interface Example {
  readonly where: string;
  readonly obj: Record<string, unknown>;
}

/** Every `weft.dev` object of the sample manifests (`manifests/`, not `crds/`) and of docs' YAML examples. */
export function weftExamples(root: string): Example[] {
  const out: Example[] = [];
  const add = (where: string, text: string): void => {
    for (const doc of parseAllDocuments(text)) {
      const obj = doc.toJS() as unknown;
      if (typeof obj === 'object' && obj !== null && (obj as { apiVersion?: unknown }).apiVersion === 'weft.dev/v1alpha1') {
        out.push({ where, obj: obj as Record<string, unknown> });
      }
    }
  };
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) {
        if (name !== 'crds') walk(path);
      } else if (/\.ya?ml$/.test(name)) add(relative(root, path), readFileSync(path, 'utf8'));
    }
  };
  walk(join(root, 'manifests'));
  const docs = join(root, 'docs');
  for (const name of readdirSync(docs).filter((n) => n.endsWith('.md')).sort()) {
    const text = readFileSync(join(docs, name), 'utf8');
    for (const m of text.matchAll(/```yaml\n([\s\S]*?)```/g)) add(`docs/${name}`, m[1]);
  }
  return out;
}

/** One file of `api/test/fixtures/crd-invalid/`: a policy the API server must refuse. */
export interface InvalidFixture {
  /** Its absolute path (for `kubectl apply -f`). */
  readonly path: string;
  readonly file: string;
  readonly obj: Record<string, unknown>;
  /** Which layer refuses it: the OpenAPI schema or a CEL rule (annotation `weft.dev/test-layer`). */
  readonly layer: 'schema' | 'cel';
  /** A substring of the API server's error (annotation `weft.dev/test-expect`). */
  readonly expect: string;
  /** The parser accepts it (a limit only the API server has; annotation `weft.dev/test-parser: accepts`). */
  readonly parserAccepts: boolean;
}

/** The malformed-policy table, read from `api/test/fixtures/crd-invalid/*.yaml`; throws on a malformed entry. */
export function invalidFixtures(root: string): InvalidFixture[] {
  const dir = join(root, 'api', 'test', 'fixtures', 'crd-invalid');
  return readdirSync(dir)
    .filter((n) => n.endsWith('.yaml'))
    .sort()
    .map((file) => {
      const obj = parseAllDocuments(readFileSync(join(dir, file), 'utf8'))[0].toJS() as Record<string, unknown>;
      const ann = (obj.metadata as { annotations?: Record<string, string> }).annotations ?? {};
      const layer = ann['weft.dev/test-layer'];
      const expect = ann['weft.dev/test-expect'];
      if (layer !== 'schema' && layer !== 'cel') throw new Error(`${file}: weft.dev/test-layer must be schema or cel`);
      if (!expect) throw new Error(`${file}: weft.dev/test-expect is required`);
      return { path: join(dir, file), file, obj, layer, expect, parserAccepts: ann['weft.dev/test-parser'] === 'accepts' };
    });
}
