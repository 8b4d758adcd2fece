import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Endpoint } from '../src/config';
import { createBalancer, hasBalancer, registerBalancer, type Balancer } from '../src/balancer';
import { pickWeightedCluster, type WeightedAction } from '../src/route-weighted';
import { endpoint, weighted } from './fixtures';

/** A deterministic "random": an evenly spaced grid over [0, 1), so proportions come out exact. */
function grid(n: number): () => number {
  let i = 0;
  return () => ((i++ % n) + 0.5) / n;
}

function tally(balancer: Balancer, list: readonly Endpoint[], picks: number): Map<number, number> {
  const counts = new Map<number, number>();
  for (let i = 0; i < picks; i++) {
    const e = balancer.pick(list);
    assert.ok(e, 'expected an endpoint');
    counts.set(e.port, (counts.get(e.port) ?? 0) + 1);
  }
  return counts;
}

test('round robin visits every equal-weight endpoint once per cycle', () => {
  const list = [endpoint('10.0.0.1', 1), endpoint('10.0.0.2', 2), endpoint('10.0.0.3', 3)];
  const rr = createBalancer('ROUND_ROBIN');
  for (let cycle = 0; cycle < 4; cycle++) {
    const seen = new Set([rr.pick(list)!.port, rr.pick(list)!.port, rr.pick(list)!.port]);
    assert.equal(seen.size, 3);
  }
});

test('round robin honours weights exactly over whole cycles and interleaves them', () => {
  const list = [endpoint('10.0.0.1', 1, { weight: 3 }), endpoint('10.0.0.2', 2, { weight: 1 })];
  const rr = createBalancer('ROUND_ROBIN');
  const counts = tally(rr, list, 400);
  assert.deepEqual([counts.get(1), counts.get(2)], [300, 100]);
  // Smooth WRR never sends the light endpoint twice in a row.
  let prev = 0;
  for (let i = 0; i < 40; i++) {
    const port = rr.pick(list)!.port;
    assert.ok(!(port === 2 && prev === 2));
    prev = port;
  }
});

test('round robin skips unhealthy endpoints and returns undefined when none is healthy', () => {
  const rr = createBalancer('ROUND_ROBIN');
  const list = [endpoint('10.0.0.1', 1, { healthy: false }), endpoint('10.0.0.2', 2)];
  for (let i = 0; i < 5; i++) assert.equal(rr.pick(list)!.port, 2);
  assert.equal(rr.pick([endpoint('10.0.0.1', 1, { healthy: false })]), undefined);
  assert.equal(rr.pick([]), undefined);
});

test('random picks in proportion to weight', () => {
  const list = [endpoint('10.0.0.1', 1, { weight: 1 }), endpoint('10.0.0.2', 2, { weight: 3 }), endpoint('10.0.0.3', 3, { weight: 6 })];
  const counts = tally(createBalancer('RANDOM', grid(1000)), list, 1000);
  assert.deepEqual([counts.get(1), counts.get(2), counts.get(3)], [100, 300, 600]);
});

test('random skips unhealthy endpoints and returns undefined when none is healthy', () => {
  const random = createBalancer('RANDOM');
  const list = [endpoint('10.0.0.1', 1), endpoint('10.0.0.2', 2, { healthy: false })];
  for (let i = 0; i < 20; i++) assert.equal(random.pick(list)!.port, 1);
  assert.equal(random.pick([endpoint('10.0.0.2', 2, { healthy: false })]), undefined);
});

test('an unimplemented policy (LEAST_REQUEST) falls back to round robin', () => {
  assert.equal(hasBalancer('LEAST_REQUEST'), false);
  assert.equal(createBalancer('LEAST_REQUEST').policy, 'ROUND_ROBIN');
});

test('policies register by name', () => {
  registerBalancer('FIRST', () => ({ policy: 'FIRST', pick: (list) => list.find((e) => e.healthy) }));
  assert.equal(createBalancer('FIRST').pick([endpoint('10.0.0.9', 9)])!.port, 9);
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
