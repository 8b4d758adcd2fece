/**
 * Load balancing, outlier detection and connection-pool limits through a real listener, with real
 * loopback upstreams (fixtures.ts). Ejection timing runs on `mock.timers`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type http from 'node:http';
import type { Cluster, Endpoint, OutlierDetection } from '../src/config';
import { balancersOf } from '../src/proxy-snapshot';
import { cluster, proxyConfig, route, routeTable, send, sleep, startProxy, startUpstream, vhost, type Upstream } from './fixtures';

const NAME = 'backend';

function config(endpoints: Endpoint[], opts: Partial<Omit<Cluster, 'name'>>) {
  return proxyConfig({
    routeTables: [routeTable('outbound', [vhost('all', ['*'], [route('default', NAME)])])],
    clusters: [cluster(NAME, opts)],
    endpoints: { [NAME]: endpoints },
  });
}

async function upstreams(n: number, handler?: (i: number) => (req: { url: string }, res: http.ServerResponse) => void): Promise<Upstream[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => startUpstream(`u${i}`, handler?.(i))));
}

const ok = (name: string) => (_req: unknown, res: http.ServerResponse) => {
  res.writeHead(200, { 'x-upstream': name });
  res.end(name);
};
const status = (code: number, name: string) => (_req: unknown, res: http.ServerResponse) => {
  res.writeHead(code, { 'x-upstream': name });
  res.end(name);
};

async function tally(port: number, n: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const r = await send(port);
    const who = String(r.headers['x-upstream'] ?? r.status);
    counts.set(who, (counts.get(who) ?? 0) + 1);
  }
  return counts;
}

const OD: OutlierDetection = {
  consecutive5xx: 3,
  consecutiveGatewayFailure: 3,
  intervalMs: 1000,
  baseEjectionTimeMs: 30_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionPercent: 50,
};

test('peak EWMA sends most traffic away from a 50 ms upstream, and still probes it', async () => {
  const slow = await startUpstream('slow', (_r, res) => void setTimeout(() => ok('slow')(_r, res), 50));
  const fast = await startUpstream('fast', ok('fast'));
  const proxy = await startProxy(config([slow.endpoint(), fast.endpoint()], { lbPolicy: 'PEAK_EWMA', peakEwma: { decayMs: 200, defaultRttMs: 30 } }));
  try {
    const counts = new Map<string, number>();
    const until = performance.now() + 2500;
    while (performance.now() < until) {
      const who = String((await send(proxy.port)).headers['x-upstream']);
      counts.set(who, (counts.get(who) ?? 0) + 1);
    }
    const s = counts.get('slow') ?? 0;
    const total = s + (counts.get('fast') ?? 0);
    assert.ok(s / total < 0.1, `slow share ${s}/${total}`);
    assert.ok(s >= 2, `slow probed ${s} times`);
  } finally {
    await proxy.close();
    await slow.close();
    await fast.close();
  }
});

test('least request sends to the endpoint with fewer requests in flight', async () => {
  const held: http.ServerResponse[] = [];
  const [a, b] = await upstreams(2, (i) => (req, res) => (req.url === '/hang' ? held.push(res) : ok(`u${i}`)(req, res)));
  const proxy = await startProxy(config([a!.endpoint(), b!.endpoint()], { lbPolicy: 'LEAST_REQUEST' }));
  try {
    const hanging = send(proxy.port, { path: '/hang' });
    while (held.length === 0) await sleep(5);
    const busy = a!.received.length ? 'u0' : 'u1';
    const counts = await tally(proxy.port, 6);
    assert.equal(counts.get(busy), undefined, `${[...counts]}`);
    assert.equal(counts.get(busy === 'u0' ? 'u1' : 'u0'), 6);
    for (const r of held) r.end('done');
    await hanging;
  } finally {
    await proxy.close();
    await a!.close();
    await b!.close();
  }
});

test('round robin and random stay even over real upstreams', async () => {
  const ups = await upstreams(3, (i) => ok(`u${i}`));
  try {
    for (const lbPolicy of ['ROUND_ROBIN', 'RANDOM'] as const) {
      const proxy = await startProxy(config(ups.map((u) => u.endpoint()), { lbPolicy }));
      const counts = await tally(proxy.port, 300);
      await proxy.close();
      for (const u of ['u0', 'u1', 'u2']) {
        const n = counts.get(u) ?? 0;
        if (lbPolicy === 'ROUND_ROBIN') assert.equal(n, 100, `${lbPolicy} ${[...counts]}`);
        else assert.ok(n >= 65 && n <= 135, `${lbPolicy} ${[...counts]}`);
      }
    }
  } finally {
    for (const u of ups) await u.close();
  }
});

test('an upstream answering consecutive 5xx is ejected, traffic moves to the others, and it returns after the ejection time', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'Date'] });
  const ups = await upstreams(3, (i) => (i === 0 ? status(500, 'u0') : ok(`u${i}`)));
  const proxy = await startProxy(config(ups.map((u) => u.endpoint()), { lbPolicy: 'ROUND_ROBIN', outlierDetection: OD }));
  try {
    const before = await tally(proxy.port, 9);
    assert.equal(before.get('u0'), 3); // three 500s in a row: ejected on the third
    const during = await tally(proxy.port, 30);
    assert.equal(during.get('u0'), undefined, `${[...during]}`);
    assert.equal((during.get('u1') ?? 0) + (during.get('u2') ?? 0), 30);
    const od = balancersOf(proxy.pool).get(NAME)!.outlier!;
    assert.deepEqual(od.stats(), { ejectionsActive: 1, ejectionsTotal: 1, ejectionsOverflow: 0 });

    t.mock.timers.tick(29_000);
    assert.equal((await tally(proxy.port, 6)).get('u0'), undefined);
    t.mock.timers.tick(1_000); // 30 s = base ejection time × 1
    assert.equal((await tally(proxy.port, 6)).get('u0'), 2);
    // Ejected a second time, it stays out twice as long.
    await tally(proxy.port, 6);
    assert.equal(od.stats().ejectionsTotal, 2);
    t.mock.timers.tick(30_000);
    assert.equal((await tally(proxy.port, 6)).get('u0'), undefined);
    t.mock.timers.tick(30_000);
    assert.ok((await tally(proxy.port, 6)).get('u0'));
  } finally {
    await proxy.close();
    for (const u of ups) await u.close();
  }
});

test('max ejection percent holds, and with every endpoint ejected the cluster fails open', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval', 'Date'] });
  const ups = await upstreams(4, (i) => status(503, `u${i}`));
  const proxy = await startProxy(config(ups.map((u) => u.endpoint()), { lbPolicy: 'ROUND_ROBIN', outlierDetection: OD }));
  try {
    await tally(proxy.port, 40);
    const od = balancersOf(proxy.pool).get(NAME)!.outlier!;
    assert.equal(od.stats().ejectionsActive, 2); // 50% of 4
    assert.ok(od.stats().ejectionsOverflow > 0);
    const counts = await tally(proxy.port, 10);
    assert.equal(counts.size, 2, `${[...counts]}`);

    // 100%: all four ejected, yet requests still reach them (panic), not "no healthy upstream".
    proxy.set(config(ups.map((u) => u.endpoint()), { lbPolicy: 'ROUND_ROBIN', outlierDetection: { ...OD, maxEjectionPercent: 100 } }));
    await tally(proxy.port, 40);
    assert.equal(od.stats().ejectionsActive, 4);
    const r = await send(proxy.port);
    assert.equal(r.status, 503);
    assert.match(String(r.headers['x-upstream']), /^u\d$/);
  } finally {
    await proxy.close();
    for (const u of ups) await u.close();
  }
});

test('connection pool: with 1 connection and 1 pending, the rest of a burst gets 503 upstream overflow, counted', async () => {
  const held: http.ServerResponse[] = [];
  const up = await startUpstream('u', (_r, res) => void held.push(res));
  const proxy = await startProxy(config([up.endpoint()], { circuitBreakers: { maxConnections: 1, maxPendingRequests: 1 } }));
  try {
    const burst = Array.from({ length: 5 }, () => send(proxy.port));
    while (held.length === 0) await sleep(5);
    await sleep(50);
    assert.equal(held.length, 1); // one forwarded, one waiting, three refused
    const limits = balancersOf(proxy.pool).get(NAME)!.limits;
    assert.equal(limits.overflows, 3);
    assert.equal(limits.pending, 1);
    held.shift()!.end('first');
    while ((held.length as number) === 0) await sleep(5);
    held.shift()!.end('second');
    const replies = await Promise.all(burst);
    assert.deepEqual(replies.map((r) => r.status).sort(), [200, 200, 503, 503, 503]);
    for (const r of replies.filter((x) => x.status === 503)) assert.equal(r.body, 'upstream overflow');
  } finally {
    await proxy.close();
    await up.close();
  }
});

test('max requests per connection closes an upstream connection after that many requests', async () => {
  const up = await startUpstream('u');
  const proxy = await startProxy(config([up.endpoint()], { maxRequestsPerConnection: 2 }));
  try {
    for (let i = 0; i < 6; i++) assert.equal((await send(proxy.port)).status, 200);
    assert.equal(up.connections, 3);
  } finally {
    await proxy.close();
    await up.close();
  }
});
