/**
 * Fault injection and mirroring over real sockets: a listener on 127.0.0.1:0, real upstreams, a
 * real client. The fault stage's timing is also checked with mock timers (fault-inject.ts).
 */
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { FaultPolicy, MirrorPolicy, ProxyConfig, Route } from '../src/config';
import { applyFault, decideFault, type FaultOutcome } from '../src/fault-inject';
import { RequestMirrors, shadowHost } from '../src/mirror-http';
import { HttpProxyListener } from '../src/listener-http';
import { UpstreamPool } from '../src/upstream-pool';
import { silentLogger } from '@weft/api';
import { cluster, listener, proxyConfig, route, routeTable, send, sleep, startUpstream, vhost, type Upstream } from './fixtures';

function config(app: Upstream, extra: Partial<Route>, shadow?: Upstream, timeoutMs?: number): ProxyConfig {
  const r: Route = { ...route('default', 'app', timeoutMs !== undefined ? { timeoutMs } : {}), ...extra };
  return proxyConfig({
    routeTables: [routeTable('outbound', [vhost('all', ['*'], [r])])],
    clusters: [cluster('app'), ...(shadow ? [cluster('shadow')] : [])],
    endpoints: { app: [app.endpoint()], ...(shadow ? { shadow: [shadow.endpoint()] } : {}) },
  });
}

async function proxy(cfg: ProxyConfig, mirrors = new RequestMirrors()): Promise<{ port: number; mirrors: RequestMirrors; close: () => Promise<void> }> {
  const pool = new UpstreamPool();
  const l = new HttpProxyListener(listener('outbound', { faultFilter: true }), () => cfg, { log: silentLogger, pool, mirrors });
  await l.listen();
  return {
    port: l.address()!.port,
    mirrors,
    close: async () => {
      l.destroy();
      await l.close();
      pool.destroy();
    },
  };
}

const abort = (fraction: number, httpStatus = 503): FaultPolicy => ({ abort: { httpStatus, fraction } });
const delay = (fixedDelayMs: number, fraction = 1): FaultPolicy => ({ delay: { fixedDelayMs, fraction } });

test('abort 100%: the configured status, and not even a connection reaches the upstream', async (t) => {
  const app = await startUpstream('app');
  const p = await proxy(config(app, { fault: abort(1, 418) }));
  t.after(async () => { await p.close(); await app.close(); });
  const r = await send(p.port, { host: 'app' });
  assert.equal(r.status, 418);
  assert.equal(r.body, 'fault filter abort');
  assert.equal(app.connections, 0);
});

test('abort 50% over 1000 requests aborts 50 ± 7.5% of them (a 4.7-sigma bound); the rest reach the upstream', async (t) => {
  const app = await startUpstream('app');
  const p = await proxy(config(app, { fault: abort(0.5) }));
  t.after(async () => { await p.close(); await app.close(); });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  t.after(() => agent.destroy());
  const n = 1000;
  const replies = await Promise.all(Array.from({ length: n }, () => send(p.port, { host: 'app', agent })));
  const aborted = replies.filter((r) => r.status === 503 && r.body === 'fault filter abort').length;
  const passed = replies.filter((r) => r.status === 200).length;
  t.diagnostic(`aborted ${aborted} of ${n}, ${passed} passed`);
  assert.equal(aborted + passed, n, 'every reply is either the fault abort or the upstream answer');
  assert.ok(Math.abs(aborted / n - 0.5) <= 0.075, `aborted ${aborted} of ${n}`);
  assert.equal(app.received.length, passed);
});

test('a delay holds the request at least fixedDelay before it goes upstream', async (t) => {
  const app = await startUpstream('app');
  const p = await proxy(config(app, { fault: delay(150) }));
  t.after(async () => { await p.close(); await app.close(); });
  const started = performance.now();
  const r = await send(p.port, { host: 'app' });
  const took = performance.now() - started;
  assert.equal(r.status, 200);
  assert.ok(took >= 145, `took ${took.toFixed(0)} ms`);
});

test('a delay longer than the route timeout ends in 504 at the timeout, without reaching the upstream', async (t) => {
  const app = await startUpstream('app');
  const p = await proxy(config(app, { fault: delay(2000) }, undefined, 150));
  t.after(async () => { await p.close(); await app.close(); });
  const started = performance.now();
  const r = await send(p.port, { host: 'app' });
  const took = performance.now() - started;
  assert.equal(r.status, 504);
  assert.ok(took >= 145 && took < 1000, `took ${took.toFixed(0)} ms`);
  assert.equal(app.connections, 0);
});

test('fault stage with mock timers: the delay is spent from the route timeout, then the abort applies', () => {
  mock.timers.enable({ apis: ['setTimeout'] });
  try {
    const res = new EventEmitter() as unknown as ServerResponse;
    const seen: FaultOutcome[] = [];
    applyFault({ delayMs: 300 }, 1000, res, (o) => seen.push(o));
    mock.timers.tick(299);
    assert.equal(seen.length, 0);
    mock.timers.tick(1);
    assert.deepEqual(seen, [{ kind: 'continue', timeoutMs: 700 }]);

    applyFault({ delayMs: 5000 }, 1000, res, (o) => seen.push(o));
    mock.timers.tick(1000);
    assert.equal(seen[1]!.kind, 'error');
    assert.equal((seen[1] as { error: { status: number } }).error.status, 504);

    applyFault({ delayMs: 50, abortStatus: 503 }, 0, res, (o) => seen.push(o));
    mock.timers.tick(50);
    assert.equal((seen[2] as { error: { status: number } }).error.status, 503);

    applyFault({ delayMs: 50 }, 0, res, (o) => seen.push(o));
    (res as unknown as EventEmitter).emit('close');
    mock.timers.tick(100);
    assert.deepEqual(seen[3], { kind: 'downstream-closed' });
    assert.equal(seen.length, 4, 'next is called exactly once');
  } finally {
    mock.timers.reset();
  }
});

test('decideFault draws the delay and the abort independently by their fractions', () => {
  const f: FaultPolicy = { delay: { fixedDelayMs: 10, fraction: 0.5 }, abort: { httpStatus: 500, fraction: 0.5 } };
  const seq = (...v: number[]) => () => v.shift()!;
  assert.deepEqual(decideFault(f, seq(0.1, 0.9)), { delayMs: 10 });
  assert.deepEqual(decideFault(f, seq(0.9, 0.1)), { delayMs: 0, abortStatus: 500 });
  assert.deepEqual(decideFault(f, seq(0.9, 0.9)), { delayMs: 0 });
  assert.deepEqual(decideFault(undefined), { delayMs: 0 });
});

test('a route fault is ignored on a listener without the fault filter (as Envoy)', async (t) => {
  const app = await startUpstream('app');
  const pool = new UpstreamPool();
  const cfg = config(app, { fault: abort(1) });
  const l = new HttpProxyListener(listener('outbound'), () => cfg, { log: silentLogger, pool });
  await l.listen();
  t.after(async () => { l.destroy(); await l.close(); pool.destroy(); await app.close(); });
  assert.equal((await send(l.address()!.port, { host: 'app' })).status, 200);
});

const mirror = (fraction: number): MirrorPolicy[] => [{ cluster: 'shadow', fraction }];

test('mirror 30%: the shadow gets 30 ± 6.5% of 1000 requests (a 4.5-sigma bound), same method, path and body, Host suffixed -shadow', async (t) => {
  const app = await startUpstream('app');
  const shadow = await startUpstream('shadow');
  const p = await proxy(config(app, { mirrors: mirror(0.3) }, shadow));
  t.after(async () => { await p.close(); await app.close(); await shadow.close(); });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  t.after(() => agent.destroy());
  const replies = await Promise.all(
    Array.from({ length: 1000 }, (_, i) => send(p.port, { host: 'app.shop:8080', method: 'POST', path: `/items?i=${i}`, body: `body-${i}`, agent })),
  );
  assert.ok(replies.every((r) => r.status === 200 && r.body === 'app'));
  for (let waited = 0; shadow.received.length < p.mirrors.stats.sent && waited < 2000; waited += 20) await sleep(20);
  const n = shadow.received.length;
  t.diagnostic(`mirrored ${n} of 1000`);
  assert.equal(n, p.mirrors.stats.sent, 'every mirror the sidecar sent reached the shadow');
  assert.ok(Math.abs(n / 1000 - 0.3) <= 0.065, `mirrored ${n} of 1000`);
  for (const r of shadow.received) {
    assert.equal(r.method, 'POST');
    assert.equal(r.headers.host, 'app.shop-shadow:8080');
    assert.equal(r.body, `body-${r.url.split('=')[1]}`);
  }
  assert.equal(p.mirrors.stats.failed, 0);
  assert.equal(p.mirrors.active, 0);
});

test('a mirror that hangs or resets changes nothing for the primary: same status, no added latency', async (t) => {
  const app = await startUpstream('app');
  const hanging = await startUpstream('hanging', () => undefined); // never answers
  const reset = await startUpstream('reset', (_req, res) => res.socket?.destroy());
  t.after(async () => { await app.close(); await hanging.close(); await reset.close(); });
  for (const shadow of [hanging, reset]) {
    const p = await proxy(config(app, { mirrors: mirror(1) }, shadow, 5000));
    const started = performance.now();
    const replies = await Promise.all(Array.from({ length: 20 }, () => send(p.port, { host: 'app', method: 'POST', body: 'x' })));
    const took = performance.now() - started;
    assert.ok(replies.every((r) => r.status === 200 && r.body === 'app'), shadow.name);
    assert.ok(took < 1000, `${shadow.name}: 20 requests took ${took.toFixed(0)} ms`);
    await sleep(50);
    assert.equal(shadow.received.length, 20, `${shadow.name} got every copy`);
    if (shadow === reset) assert.equal(p.mirrors.stats.failed, 20);
    await p.close();
  }
});

test('mirror concurrency is bounded: copies beyond maxInFlight are dropped and counted', async (t) => {
  const app = await startUpstream('app');
  const hanging = await startUpstream('hanging', () => undefined);
  const p = await proxy(config(app, { mirrors: mirror(1) }, hanging, 5000), new RequestMirrors(3));
  t.after(async () => { await p.close(); await app.close(); await hanging.close(); });
  for (let i = 0; i < 8; i++) assert.equal((await send(p.port, { host: 'app' })).status, 200);
  assert.equal(p.mirrors.active, 3);
  assert.equal(p.mirrors.stats.dropped, 5);
  assert.equal(p.mirrors.stats.sent, 3);
});

test('a body larger than the buffer is not mirrored (counted); the primary gets all of it', async (t) => {
  const app = await startUpstream('app', (req, res) => res.end(String(req.body.length)));
  const shadow = await startUpstream('shadow');
  const p = await proxy(config(app, { mirrors: mirror(1) }, shadow));
  t.after(async () => { await p.close(); await app.close(); await shadow.close(); });
  const r = await send(p.port, { host: 'app', method: 'POST', body: 'y'.repeat(100_000) });
  assert.equal(r.body, '100000');
  await sleep(50);
  assert.equal(shadow.received.length, 0);
  assert.equal(p.mirrors.stats.bodyTooLarge, 1);
});

test('shadowHost puts -shadow before the port, as Envoy', () => {
  assert.equal(shadowHost('a.b:8080'), 'a.b-shadow:8080');
  assert.equal(shadowHost('a.b'), 'a.b-shadow');
  assert.equal(shadowHost('[::1]:80'), '[::1]-shadow:80');
});
