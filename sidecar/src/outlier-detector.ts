/**
 * Passive outlier detection, as Envoy's `outlier_detection` for the consecutive-error detectors:
 * an endpoint that answers `consecutive5xx` 5xx responses in a row (or `consecutiveGatewayFailure`
 * 502/503/504s) is ejected — taken out of load balancing — for `baseEjectionTime × times ejected`
 * (capped at `maxEjectionTime`). Local failures count as Envoy counts them without
 * `split_external_local_origin_errors`: no connection or a reset as a 503, a timeout as a 504
 * (and an attempt given up for a retry, cause untold, as a 503).
 *
 * - Never more than `maxEjectionPercent` of the cluster's endpoints is ejected at once (Envoy's
 *   test: ejecting one more must keep the share at or below the limit).
 * - Every `interval`, ejected endpoints whose time is up return; an endpoint that has stayed in for
 *   a further `baseEjectionTime` since it returned has its multiplier lowered by one.
 * - State (counters, ejections, multipliers) is per endpoint `address:port` and survives config
 *   swaps for endpoints that remain; endpoints that leave are forgotten.
 *
 * When every endpoint is ejected the cluster balancer fails open (Envoy's panic mode): see
 * `cluster-balancer.ts`.
 */
import type { OutlierDetection } from './config';
import type { CallResult } from './balancer';

interface Monitor {
  consecutive5xx: number;
  consecutiveGateway: number;
  ejected: boolean;
  ejectedAt: number;
  /** Times ejected, lowered again while healthy: the ejection-time multiplier. */
  multiplier: number;
  returnedAt: number;
}

export interface OutlierEvents {
  /** `endpoint` was ejected (`reason`: which detector), or returned. */
  ejected?(endpoint: string, reason: 'consecutive_5xx' | 'consecutive_gateway_failure', forMs: number): void;
  returned?(endpoint: string): void;
}

export interface OutlierStats {
  readonly ejectionsActive: number;
  /** Ejections performed since the cluster was created. */
  readonly ejectionsTotal: number;
  /** Ejections a detector asked for that `maxEjectionPercent` refused. */
  readonly ejectionsOverflow: number;
}

/**
 * One cluster's detector. `record` is synchronous and O(1); it bumps `version` whenever the set of
 * ejected endpoints changes, which is how pickers notice. Timers are unref'd; `close()` stops them.
 */
export class OutlierDetector {
  private readonly monitors = new Map<string, Monitor>();
  private config: OutlierDetection;
  private timer: NodeJS.Timeout | undefined;
  private active = 0;
  private total = 0;
  private overflow = 0;
  /** Changes whenever an endpoint is ejected or returns. */
  version = 0;

  constructor(
    config: OutlierDetection,
    private readonly now: () => number = Date.now,
    private readonly events: OutlierEvents = {},
  ) {
    this.config = config;
    this.schedule();
  }

  /** New settings (a new config version); counters and ejections carry over. */
  update(config: OutlierDetection): void {
    const rearm = config.intervalMs !== this.config.intervalMs;
    this.config = config;
    if (rearm) this.schedule();
  }

  /** The endpoints the cluster has now (`address:port`); others are forgotten (and return if ejected). */
  setEndpoints(keys: Iterable<string>): void {
    const keep = new Set(keys);
    for (const key of keep) if (!this.monitors.has(key)) this.monitors.set(key, fresh());
    for (const [key, m] of this.monitors) {
      if (keep.has(key)) continue;
      if (m.ejected) {
        this.active--;
        this.version++;
      }
      this.monitors.delete(key);
    }
  }

  isEjected(key: string): boolean {
    return this.monitors.get(key)?.ejected ?? false;
  }

  /** Keys of the endpoints ejected right now. */
  ejected(): string[] {
    return [...this.monitors].filter(([, m]) => m.ejected).map(([k]) => k);
  }

  stats(): OutlierStats {
    return { ejectionsActive: this.active, ejectionsTotal: this.total, ejectionsOverflow: this.overflow };
  }

  /** The outcome of one call to `key`. A cancelled call says nothing and is ignored. */
  record(key: string, result: CallResult): void {
    if (result.kind === 'cancelled') return;
    const m = this.monitors.get(key);
    if (!m) return;
    const status = result.kind === 'response' ? result.status : result.kind === 'timeout' ? 504 : 503;
    if (status < 500 || status > 599) {
      m.consecutive5xx = 0;
      m.consecutiveGateway = 0;
      return;
    }
    const c = this.config;
    if (status >= 502 && status <= 504) {
      // `===`, as Envoy: the detector fires once when the count is reached, then the count restarts.
      if (++m.consecutiveGateway === c.consecutiveGatewayFailure && c.consecutiveGatewayFailure > 0) {
        m.consecutiveGateway = 0;
        this.eject(key, m, 'consecutive_gateway_failure');
      }
    } else {
      m.consecutiveGateway = 0;
    }
    if (++m.consecutive5xx === c.consecutive5xx && c.consecutive5xx > 0) {
      m.consecutive5xx = 0;
      this.eject(key, m, 'consecutive_5xx');
    }
  }

  /** Reviews ejections now (what the interval timer runs). */
  sweep(): void {
    const t = this.now();
    const { baseEjectionTimeMs: base } = this.config;
    for (const [key, m] of this.monitors) {
      if (m.ejected) {
        if (t - m.ejectedAt >= this.ejectionMs(m)) {
          m.ejected = false;
          m.returnedAt = t;
          this.active--;
          this.version++;
          this.events.returned?.(key);
        }
      } else if (m.multiplier > 0 && t - m.returnedAt >= base) {
        m.multiplier--;
        m.returnedAt = t;
      }
    }
  }

  /** Stops the interval timer. Idempotent; `record` keeps counting but nothing returns until `update`. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private ejectionMs(m: Monitor): number {
    const { baseEjectionTimeMs: base, maxEjectionTimeMs: max } = this.config;
    return Math.min(base * m.multiplier, Math.max(base, max));
  }

  private eject(key: string, m: Monitor, reason: 'consecutive_5xx' | 'consecutive_gateway_failure'): void {
    if (m.ejected) return;
    const share = (100 * (this.active + 1)) / this.monitors.size;
    if (share > this.config.maxEjectionPercent) {
      this.overflow++;
      return;
    }
    m.ejected = true;
    m.ejectedAt = this.now();
    m.multiplier++;
    this.active++;
    this.total++;
    this.version++;
    this.events.ejected?.(key, reason, this.ejectionMs(m));
  }

  private schedule(): void {
    this.close();
    this.timer = setInterval(() => this.sweep(), Math.max(1, this.config.intervalMs));
    this.timer.unref?.();
  }
}

function fresh(): Monitor {
  return { consecutive5xx: 0, consecutiveGateway: 0, ejected: false, ejectedAt: 0, multiplier: 0, returnedAt: 0 };
}
