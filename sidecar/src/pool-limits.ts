/**
 * Connection-pool limits for one cluster, Envoy's circuit breakers for HTTP/1.1: a request holds
 * one upstream connection for its whole exchange, so at most `maxConnections` requests are
 * forwarded at once; up to `maxPendingRequests` more wait, first come first served, for one to
 * finish; beyond that a request overflows and is answered `503 upstream overflow` at once (Envoy's
 * `UO`), and `overflows` counts it (Envoy's `upstream_rq_pending_overflow`).
 *
 * Idle keep-alive connections hold no slot (Envoy counts them, but reuses them first; the cap on
 * connections in use is the same). State survives config swaps: a new config's thresholds apply
 * to the next admission, and requests in flight keep their slots.
 */
import type { CircuitBreakers } from './config';

/** Envoy's defaults when a cluster sets no thresholds. */
export const DEFAULT_CIRCUIT_BREAKERS: CircuitBreakers = { maxConnections: 1024, maxPendingRequests: 1024 };

/** Ends a request's hold on its slot (idempotent). */
export type Release = () => void;

interface Waiter {
  start: ((release: Release) => void) | undefined;
}

export class PoolLimits {
  private limits: CircuitBreakers;
  private active = 0;
  private readonly queue: Waiter[] = [];
  private head = 0;
  private waiting = 0;
  /** Requests refused because both the connections and the pending queue were full. */
  overflows = 0;

  constructor(limits: CircuitBreakers = DEFAULT_CIRCUIT_BREAKERS) {
    this.limits = limits;
  }

  update(limits: CircuitBreakers): void {
    this.limits = limits;
    this.drain();
  }

  /** Requests holding a slot now, and waiting for one. */
  get inFlight(): number {
    return this.active;
  }
  get pending(): number {
    return this.waiting;
  }

  /**
   * Admits one request: `start(release)` runs now (synchronously) when a slot is free, or later,
   * when one frees, if the pending queue has room. Returns `undefined` on overflow (counted;
   * `start` never runs); otherwise a function that withdraws a request still waiting (no-op once
   * started). The caller must call `release` exactly once when the request ends; extra calls are
   * ignored.
   */
  enter(start: (release: Release) => void): (() => void) | undefined {
    if (this.active < this.limits.maxConnections && this.pending === 0) {
      this.run(start);
      return noop;
    }
    if (this.pending >= this.limits.maxPendingRequests) {
      this.overflows++;
      return undefined;
    }
    const waiter: Waiter = { start };
    this.queue.push(waiter);
    this.waiting++;
    return () => {
      if (!waiter.start) return;
      waiter.start = undefined;
      this.waiting--;
    };
  }

  /**
   * The fast path of `enter`: takes a slot now when one is free and nobody waits (true), without
   * a callback or a release function; the caller must call `leave()` exactly once when the request
   * ends. False: use `enter`.
   */
  tryEnter(): boolean {
    if (this.active < this.limits.maxConnections && this.pending === 0) {
      this.active++;
      return true;
    }
    return false;
  }

  /** Gives back a slot taken by `tryEnter` (the next waiter, if any, starts). */
  leave(): void {
    this.active--;
    this.drain();
  }

  private run(start: (release: Release) => void): void {
    this.active++;
    let released = false;
    start(() => {
      if (released) return;
      released = true;
      this.leave();
    });
  }

  private drain(): void {
    while (this.active < this.limits.maxConnections && this.head < this.queue.length) {
      const w = this.queue[this.head++]!;
      const start = w.start;
      if (!start) continue;
      w.start = undefined;
      this.waiting--;
      this.run(start);
    }
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }
}

const noop = (): void => undefined;
