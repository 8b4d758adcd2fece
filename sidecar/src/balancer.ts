/**
 * Load balancing policies, registered by name (grpc-js's registry). A `Balancer` lives per cluster
 * per config: it is built when config arrives and asked `pick()` on the request path.
 */
import type { Endpoint, LbPolicy } from './config';
import { createRoundRobinBalancer } from './balancer-round-robin';
import { createRandomBalancer } from './balancer-random';

export interface Balancer {
  /** The registered policy name that built this balancer. */
  readonly policy: string;
  /**
   * Picks one healthy endpoint of `endpoints`, honouring weights; `undefined` when none is healthy.
   * Synchronous and never throws. A balancer may keep position state (round robin) for the list it
   * was last given; a different list (by identity) starts fresh.
   */
  pick(endpoints: readonly Endpoint[]): Endpoint | undefined;
}

/** Builds a balancer; `random` (uniform in [0, 1)) is the only source of randomness it may use. */
export type BalancerFactory = (random: () => number) => Balancer;

const registry = new Map<string, BalancerFactory>([
  ['ROUND_ROBIN', createRoundRobinBalancer],
  ['RANDOM', createRandomBalancer],
]);

/** Adds or replaces the policy `name`. Later `createBalancer(name)` calls use it. */
export function registerBalancer(name: LbPolicy | string, factory: BalancerFactory): void {
  registry.set(name, factory);
}

/** Whether `name` has a registered implementation (others fall back, see `createBalancer`). */
export function hasBalancer(name: string): boolean {
  return registry.has(name);
}

/**
 * A new balancer for `policy`. A policy without an implementation (today `LEAST_REQUEST`) falls back
 * to `ROUND_ROBIN`, Envoy's default, so a valid config never fails on the request path.
 */
export function createBalancer(policy: LbPolicy | string, random: () => number = Math.random): Balancer {
  const factory = registry.get(policy) ?? registry.get('ROUND_ROBIN')!;
  return factory(random);
}
