import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '@weft/api';
import type { ProxyConfig } from '../src/config';
import { ListenerManager } from '../src/listener-manager';
import { UpstreamPool } from '../src/upstream-pool';
import { cluster, listener, proxyConfig, route, routeTable, send, sleep, startUpstream, vhost } from './fixtures';

function managed(): { manager: ListenerManager; pool: UpstreamPool; apply(c: ProxyConfig): Promise<string[]> } {
  let current = proxyConfig({});
  const pool = new UpstreamPool();
  const manager = new ListenerManager(() => current, { log: silentLogger, pool });
  return {
    manager,
    pool,
    apply: (c) => {
      current = c;
      return manager.apply(c);
    },
  };
}

test('ListenerManager starts new listeners, rebinds moved ones, closes removed ones and reports bind failures', async (t) => {
  const app = await startUpstream('app');
  const squatter = await startUpstream('squatter');
  const { manager, pool, apply } = managed();
  t.after(async () => {
    manager.destroy();
    pool.destroy();
    await Promise.all([app.close(), squatter.close()]);
  });
  const base = {
    routeTables: [routeTable('outbound', [vhost('v', ['*'], [route('r', 'app')])])],
    clusters: [cluster('app')],
    endpoints: { app: [app.endpoint()] },
  };

  assert.deepEqual(await apply(proxyConfig({ ...base, listeners: [listener('a'), listener('b')] })), []);
  assert.deepEqual(manager.names().sort(), ['a', 'b']);
  const a = manager.get('a')!;
  const bPort = manager.get('b')!.address()!.port;
  assert.equal((await send(a.address()!.port)).body, 'app');

  const errors = await apply(
    proxyConfig({ ...base, listeners: [listener('a', { address: '127.0.0.2' }), listener('c', { port: squatter.port })] }),
  );
  assert.equal(errors.length, 1);
  assert.match(errors[0]!, new RegExp(`listener c: cannot bind 127\\.0\\.0\\.1:${squatter.port}: address already in use`));
  assert.deepEqual(manager.names(), ['a']);
  const moved = manager.get('a')!;
  assert.notEqual(moved, a);
  assert.equal(moved.address()!.address, '127.0.0.2');
  assert.equal((await send(moved.address()!.port, { address: '127.0.0.2' })).body, 'app');
  assert.equal(a.address(), undefined);
  await assert.rejects(send(bPort), /ECONNREFUSED/);

  // Same address and port: updated in place, not rebound.
  const sameSpec = { ...moved.spec };
  await apply(proxyConfig({ ...base, listeners: [sameSpec] }));
  assert.equal(manager.get('a'), moved);
  assert.equal(moved.spec, sameSpec);

  await manager.close();
  assert.equal(moved.address(), undefined);
  assert.deepEqual(await manager.apply(proxyConfig({ ...base, listeners: [listener('z')] })), ['listener manager is closed']);
});

test('ListenerManager.apply drops pooled connections to endpoints that left the config', async (t) => {
  const v1 = await startUpstream('v1');
  const v2 = await startUpstream('v2');
  const { manager, pool, apply } = managed();
  t.after(async () => {
    manager.destroy();
    pool.destroy();
    await Promise.all([v1.close(), v2.close()]);
  });
  const config = (to: string, endpoints: Record<string, ReturnType<typeof v1.endpoint>[]>) =>
    proxyConfig({
      listeners: [listener('out', { port: 0 })],
      routeTables: [routeTable('outbound', [vhost('v', ['*'], [route('r', to)])])],
      clusters: [cluster('v1'), cluster('v2')],
      endpoints,
    });
  await apply(config('v1', { v1: [v1.endpoint()], v2: [v2.endpoint()] }));
  const port = manager.get('out')!.address()!.port;
  assert.equal((await send(port)).body, 'v1');
  assert.deepEqual(pool.keys(), [`127.0.0.1:${v1.port}`]);

  await apply(config('v2', { v2: [v2.endpoint()] }));
  assert.equal((await send(port)).body, 'v2');
  await sleep(20);
  assert.equal(v1.closedConnections, v1.connections);
  assert.deepEqual(pool.keys(), [`127.0.0.1:${v2.port}`]);
});

test('removing a listener lets its in-flight request finish', async (t) => {
  const slow = await startUpstream('slow', (_req, res) => setTimeout(() => res.end('finished'), 200));
  const { manager, pool, apply } = managed();
  t.after(async () => {
    manager.destroy();
    pool.destroy();
    await slow.close();
  });
  const withListener = proxyConfig({
    listeners: [listener('out')],
    routeTables: [routeTable('outbound', [vhost('v', ['*'], [route('r', 'slow')])])],
    clusters: [cluster('slow')],
    endpoints: { slow: [slow.endpoint()] },
  });
  await apply(withListener);
  const port = manager.get('out')!.address()!.port;
  const inFlight = send(port);
  await sleep(50);
  await apply({ ...withListener, listeners: new Map() });
  assert.deepEqual(manager.names(), []);
  const r = await inFlight;
  assert.deepEqual([r.status, r.body], [200, 'finished']);
  await manager.close();
});
