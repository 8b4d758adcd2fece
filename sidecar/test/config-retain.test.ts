import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Cluster, Endpoint, ProxyConfig, RouteTable } from '../src/config';
import { retainReferencedClusters } from '../src/config-retain';

const cluster = (name: string): Cluster => ({ name, discovery: 'EDS', edsServiceName: name, lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, staticEndpoints: [] });
const ep = (port: number): Endpoint => ({ address: '127.0.0.1', port, weight: 1, healthy: true });
const table = (...clusters: string[]): RouteTable => ({
  name: 'outbound',
  virtualHosts: [{ name: 'b', domains: ['b'], routes: [{ name: 'r', match: { path: { kind: 'prefix', value: '/' }, headers: [] }, action: { kind: 'weighted', clusters: clusters.map((c) => ({ cluster: c, weight: 1 })), totalWeight: clusters.length } }] }],
});
const config = (routes: RouteTable, clusters: string[], endpoints: [string, Endpoint[]][]): ProxyConfig => ({
  listeners: new Map(),
  routeTables: new Map([[routes.name, routes]]),
  clusters: new Map(clusters.map((c) => [c, cluster(c)])),
  endpoints: new Map(endpoints),
});

test('a cluster removed while a held route still sends to it stays, with its endpoints', () => {
  const before = config(table('v1', 'v2'), ['v1', 'v2'], [['v1', [ep(1)]], ['v2', [ep(2)]]]);
  // Clusters moved on to v3, but the route update was rejected: the route still names v1 and v2.
  const next = config(table('v1', 'v2'), ['v2', 'v3'], [['v2', [ep(2)]], ['v3', [ep(3)]]]);
  const kept = retainReferencedClusters(before, next);
  assert.deepEqual([...kept.clusters.keys()].sort(), ['v1', 'v2', 'v3']);
  assert.deepEqual(kept.endpoints.get('v1'), [ep(1)]);
});

test('a cluster no route names any more is dropped, and nothing is copied when nothing is missing', () => {
  const before = config(table('v1'), ['v1'], [['v1', [ep(1)]]]);
  const next = config(table('v2'), ['v2'], [['v2', [ep(2)]]]);
  assert.equal(retainReferencedClusters(before, next), next);
});

test('a cluster removed while a held TCP listener still proxies to it stays, with its endpoints', () => {
  const tcp = (clusterName: string): ProxyConfig['tcpListeners'] =>
    new Map([
      [
        '0.0.0.0_3306',
        {
          name: '0.0.0.0_3306',
          direction: 'outbound',
          address: '127.0.0.1',
          port: 3306,
          connections: {
            chains: [{ name: 'db', match: {}, filter: { kind: 'tcp', proxy: { statPrefix: 'db', target: { kind: 'cluster', cluster: clusterName }, idleTimeoutMs: 0 } } }],
            originalDst: false,
            proxyProtocol: false,
            detectTimeoutMs: 1000,
            fallbackOnTimeout: true,
          },
        },
      ],
    ]);
  const before: ProxyConfig = { ...config(table('web'), ['web', 'db'], [['web', [ep(1)]], ['db', [ep(3306)]]]), tcpListeners: tcp('db') };
  // The cluster update dropped `db`; the listener update that would stop naming it was rejected.
  const next: ProxyConfig = { ...config(table('web'), ['web'], [['web', [ep(1)]]]), tcpListeners: tcp('db') };
  const kept = retainReferencedClusters(before, next);
  assert.deepEqual([...kept.clusters.keys()].sort(), ['db', 'web']);
  assert.deepEqual(kept.endpoints.get('db'), [ep(3306)]);
});
