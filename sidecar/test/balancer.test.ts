import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Endpoint, LbPolicy } from '../src/config';
import { createBalancer, hasBalancer, registerBalancer } from '../src/balancer';
import { ClusterBalancers, type ClusterPicker } from '../src/cluster-balancer';
import { pickWeightedCluster, type WeightedAction } from '../src/route-weighted';
import { UpstreamPool } from '../src/upstream-pool';
import { cluster, endpoint, weighted } from './fixtures';

/** A deterministic "random": an evenly spaced grid over [0, 1), so proportions come out exact. */
function grid(n: number): () => number {
  let i = 0;
  return () => ((i++ % n) + 0.5) / n;
}

/** A manual monotonic clock. */
function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

function balancers(opts: { random?: () => number; now?: () => number } = {}): ClusterBalancers {
  return new ClusterBalancers(new UpstreamPool(), opts);
}

function pickerFor(policy: LbPolicy, list: Endpoint[], opts: { random?: () => number; now?: () => number } = {}): ClusterPicker {
  return balancers(opts).picker(cluster('c', { lbPolicy: policy }), list);
}

/** Picks `n` times, completing each pick at once with a 200; counts by port. */
function tally(picker: ClusterPicker, n: number): Map<number, number> {
  const counts = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const p = picker.pick();
    assert.ok(p, 'expected an endpoint');
    p.done({ kind: 'response', status: 200 });
    counts.set(p.endpoint.port, (counts.get(p.endpoint.port) ?? 0) + 1);
  }
  return counts;
}

const three = (): Endpoint[] => [endpoint('10.0.0.1', 1), endpoint('10.0.0.2', 2), endpoint('10.0.0.3', 3)];

test('round robin visits every equal-weight endpoint once per cycle', () => {
  const rr = pickerFor('ROUND_ROBIN', three());
  for (let cycle = 0; cycle < 4; cycle++) {
    const seen = new Set([rr.pick()!.endpoint.port, rr.pick()!.endpoint.port, rr.pick()!.endpoint.port]);
    assert.equal(seen.size, 3);
  }
});

test('round robin honours weights exactly over whole cycles and interleaves them', () => {
  const rr = pickerFor('ROUND_ROBIN', [endpoint('10.0.0.1', 1, { weight: 3 }), endpoint('10.0.0.2', 2, { weight: 1 })]);
  const counts = tally(rr, 400);
  assert.deepEqual([counts.get(1), counts.get(2)], [300, 100]);
  // Smooth WRR never sends the light endpoint twice in a row.
  let prev = 0;
  for (let i = 0; i < 40; i++) {
    const port = rr.pick()!.endpoint.port;
    assert.ok(!(port === 2 && prev === 2));
    prev = port;
  }
});

test('every policy skips unhealthy endpoints and picks nothing when none is healthy', () => {
  for (const policy of ['ROUND_ROBIN', 'RANDOM', 'LEAST_REQUEST', 'PEAK_EWMA'] as const) {
    const picker = pickerFor(policy, [endpoint('10.0.0.1', 1, { healthy: false }), endpoint('10.0.0.2', 2)]);
    for (let i = 0; i < 5; i++) assert.equal(picker.pick()!.endpoint.port, 2, policy);
    assert.equal(pickerFor(policy, [endpoint('10.0.0.1', 1, { healthy: false })]).pick(), undefined, policy);
    assert.equal(pickerFor(policy, []).pick(), undefined, policy);
  }
});

test('random picks in proportion to weight', () => {
  const list = [endpoint('10.0.0.1', 1, { weight: 1 }), endpoint('10.0.0.2', 2, { weight: 3 }), endpoint('10.0.0.3', 3, { weight: 6 })];
  const counts = tally(pickerFor('RANDOM', list, { random: grid(1000) }), 1000);
  assert.deepEqual([counts.get(1), counts.get(2), counts.get(3)], [100, 300, 600]);
});

test('round robin and random stay even over equal endpoints', () => {
  for (const policy of ['ROUND_ROBIN', 'RANDOM'] as const) {
    const counts = tally(pickerFor(policy, three()), 3000);
    for (const port of [1, 2, 3]) assert.ok(Math.abs(counts.get(port)! / 3000 - 1 / 3) < 0.05, `${policy}: ${[...counts]}`);
  }
});

test('least request prefers the endpoint with fewer calls in flight', () => {
  const picker = pickerFor('LEAST_REQUEST', [endpoint('10.0.0.1', 1), endpoint('10.0.0.2', 2)]);
  const load = new Map<number, number>([[1, 0], [2, 0]]);
  const held = [];
  // With two endpoints both are compared every time: each pick goes to the less loaded one.
  for (let i = 0; i < 9; i++) {
    const p = picker.pick()!;
    const other = p.endpoint.port === 1 ? 2 : 1;
    assert.ok(load.get(p.endpoint.port)! <= load.get(other)!, `pick ${i} went to the busier endpoint`);
    load.set(p.endpoint.port, load.get(p.endpoint.port)! + 1);
    held.push(p);
  }
  // Completing the calls on port 1 makes it the preferred one.
  for (const h of held) if (h.endpoint.port === 1) h.done({ kind: 'response', status: 200 });
  for (let i = 0; i < 3; i++) assert.equal(picker.pick()!.endpoint.port, 1);
});

test('peak EWMA sends most calls to the fast endpoint, and probes the slow one again as its estimate decays', () => {
  const c = clock();
  const b = balancers({ now: c.now });
  const picker = b.picker(cluster('c', { lbPolicy: 'PEAK_EWMA', peakEwma: { decayMs: 250, defaultRttMs: 30 } }), [endpoint('10.0.0.1', 1), endpoint('10.0.0.2', 2)]);
  const latency = (port: number): number => (port === 1 ? 50 : 1);
  const counts = new Map<number, number>();
  const slowAt: number[] = [];
  for (let i = 0; i < 3000; i++) {
    const p = picker.pick()!;
    const ms = latency(p.endpoint.port);
    c.advance(ms);
    p.done({ kind: 'response', status: 200 });
    counts.set(p.endpoint.port, (counts.get(p.endpoint.port) ?? 0) + 1);
    if (p.endpoint.port === 1) slowAt.push(i);
  }
  const slow = counts.get(1) ?? 0;
  assert.ok(slow / 3000 < 0.02, `slow share ${slow / 3000}`);
  // Probed more than once: after its first visit, decay makes it worth another try (about every 1 s here).
  assert.ok(slow >= 3, `slow picked ${slow} times at ${slowAt}`);
});

test('peak EWMA reacts to a slowdown at once (peak) and avoids an endpoint with calls piling up', () => {
  const c = clock();
  const b = balancers({ now: c.now });
  const picker = b.picker(cluster('c', { lbPolicy: 'PEAK_EWMA' }), [endpoint('10.0.0.1', 1), endpoint('10.0.0.2', 2)]);
  // Warm both at 5 ms.
  for (let i = 0; i < 20; i++) {
    const p = picker.pick()!;
    c.advance(5);
    p.done({ kind: 'response', status: 200 });
  }
  // One 500 ms response on port 1: it is avoided right after.
  // Calls held on port 2 make port 1 the cheaper choice soon.
  const held = [];
  let p = picker.pick()!;
  for (let i = 0; i < 100 && p.endpoint.port !== 1; i++) {
    held.push(p);
    p = picker.pick()!;
  }
  assert.equal(p.endpoint.port, 1);
  for (const h of held) h.done({ kind: 'cancelled' });
  c.advance(500);
  p.done({ kind: 'response', status: 200 });
  for (let i = 0; i < 10; i++) {
    const q = picker.pick()!;
    assert.equal(q.endpoint.port, 2);
    c.advance(5);
    q.done({ kind: 'response', status: 200 });
  }
});

test('balancer state survives a config swap for endpoints that remain', () => {
  const c = clock();
  const b = balancers({ now: c.now });
  const v1 = b.picker(cluster('c', { lbPolicy: 'LEAST_REQUEST' }), [endpoint('10.0.0.1', 1), endpoint('10.0.0.2', 2)]);
  const held = [v1.pick()!, v1.pick()!, v1.pick()!];
  const stats = b.get('c')!.endpointStats('10.0.0.1:1')!;
  const pendingOn1 = held.filter((h) => h.endpoint.port === 1).length;
  assert.equal(stats.pending, pendingOn1);
  // A new config keeps 10.0.0.1, drops .2, adds .3: .1's in-flight count carries over.
  const v2 = b.picker(cluster('c', { lbPolicy: 'LEAST_REQUEST' }), [endpoint('10.0.0.1', 1), endpoint('10.0.0.3', 3)]);
  assert.equal(b.get('c')!.endpointStats('10.0.0.1:1'), stats);
  assert.equal(b.get('c')!.endpointStats('10.0.0.2:2'), undefined);
  for (const h of held) h.done({ kind: 'response', status: 200 });
  assert.equal(stats.pending, 0);
  assert.ok(v2.pick());
});

test('an unknown policy falls back to round robin; policies register by name', () => {
  const ctx = { random: Math.random, now: () => 0, cluster: cluster('c') };
  assert.equal(hasBalancer('LEAST_REQUEST'), true);
  assert.equal(hasBalancer('PEAK_EWMA'), true);
  assert.equal(createBalancer('MAGLEV', ctx).policy, 'ROUND_ROBIN');
  registerBalancer('FIRST', () => ({ policy: 'FIRST', picker: (choices) => ({ pick: () => choices[0]! }) }));
  const picker = pickerFor('FIRST' as LbPolicy, [endpoint('10.0.0.9', 9), endpoint('10.0.0.8', 8)]);
  for (let i = 0; i < 3; i++) assert.equal(picker.pick()!.endpoint.port, 9);
});

test('a weighted route splits exactly by weight', () => {
  const action = weighted(['v1', 90], ['v2', 10]) as WeightedAction;
  const counts = new Map<string, number>();
  const random = grid(2000);
  for (let i = 0; i < 2000; i++) {
    const c = pickWeightedCluster(action, random)!;
    counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  assert.deepEqual([counts.get('v1'), counts.get('v2')], [1800, 200]);
});

test('a weighted route with Math.random lands 90/10 within 3 points over 2000 picks', () => {
  const action = weighted(['v1', 90], ['v2', 10]) as WeightedAction;
  let v2 = 0;
  for (let i = 0; i < 2000; i++) if (pickWeightedCluster(action) === 'v2') v2++;
  assert.ok(Math.abs(v2 / 2000 - 0.1) <= 0.03, `v2 share ${v2 / 2000}`);
});

test('a zero-weight cluster is never picked, and all-zero weights pick nothing', () => {
  const action = weighted(['dark', 0], ['live', 5]) as WeightedAction;
  for (const r of [0, 0.3, 0.999999]) assert.equal(pickWeightedCluster(action, () => r), 'live');
  assert.equal(pickWeightedCluster(weighted(['a', 0]) as WeightedAction), undefined);
});
