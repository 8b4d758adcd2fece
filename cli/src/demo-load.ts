/**
 * The demo's load generator and its tally. Requests go to the frontend through the frontend
 * sidecar's inbound listener (local mode: a pod with a sidecar is reached that way), on one
 * keep-alive agent, naming the app port in `x-weft-target-port` as a peer sidecar would.
 */
import { Agent, request } from 'node:http';

/** Local mode's stand-in for the original destination port (sidecar/src/config.ts). */
const TARGET_PORT_HEADER = 'x-weft-target-port';
/** Shares in the live line are over this many most recent seconds, so an edit shows quickly. */
const WINDOW_SECONDS = 5;

export interface LoadTarget {
  /** The frontend sidecar's inbound listener. */
  readonly ip: string;
  readonly port: number;
  /** Host header: the frontend Service's name. */
  readonly host: string;
  /** The frontend app's port, sent as `x-weft-target-port`. */
  readonly targetPort: number;
  readonly timeoutMs: number;
}

/** One request's outcome: the backend version that answered, or why it failed. */
export type Outcome = { readonly version: string } | { readonly failure: string };

/** Counts outcomes overall and per second (for the live line). Not thread-safe; none needed. */
export class LoadStats {
  total = 0;
  failed = 0;
  readonly versions = new Map<string, number>();
  readonly failures = new Map<string, number>();
  private readonly seconds = new Map<number, Map<string, number>>();

  /** `startedAt` (ms) is when the first request went out; rates are measured from it. */
  constructor(readonly startedAt = Date.now()) {}

  /** Records one outcome at `now` (ms). */
  add(outcome: Outcome, now = Date.now()): void {
    this.total++;
    const key = 'version' in outcome ? outcome.version : '!failed';
    if ('version' in outcome) bump(this.versions, outcome.version);
    else {
      this.failed++;
      bump(this.failures, outcome.failure);
    }
    const second = Math.floor(now / 1000);
    let bucket = this.seconds.get(second);
    if (!bucket) this.seconds.set(second, (bucket = new Map()));
    bump(bucket, key);
    for (const s of this.seconds.keys()) if (s < second - WINDOW_SECONDS) this.seconds.delete(s); // the window plus the current second
  }

  /** Counts per version (and `!failed`) over the last (up to WINDOW_SECONDS) complete seconds. */
  recent(now = Date.now()): { counts: Map<string, number>; seconds: number } {
    const current = Math.floor(now / 1000);
    const counts = new Map<string, number>();
    for (const [s, bucket] of this.seconds) {
      if (s >= current || s < current - WINDOW_SECONDS) continue;
      for (const [k, n] of bucket) bump(counts, k, n);
    }
    // Early on the window reaches back before the start: count only the time since then.
    const from = Math.max(this.startedAt, (current - WINDOW_SECONDS) * 1000);
    return { counts, seconds: Math.max(0.001, (current * 1000 - from) / 1000) };
  }
}

function bump(m: Map<string, number>, key: string, n = 1): void {
  m.set(key, (m.get(key) ?? 0) + n);
}

const pct = (n: number, of: number): string => (of === 0 ? '  -  ' : `${((100 * n) / of).toFixed(1)}%`);

/** Sends one GET / to the frontend and classifies the answer. Never rejects. */
export function sendOne(agent: Agent, t: LoadTarget): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: t.ip,
        port: t.port,
        path: '/',
        agent,
        timeout: t.timeoutMs,
        headers: { host: t.host, [TARGET_PORT_HEADER]: String(t.targetPort) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err: NodeJS.ErrnoException) => resolve({ failure: err.code ?? err.message }));
        res.on('end', () => {
          if (res.statusCode !== 200) return resolve({ failure: `HTTP ${res.statusCode}` });
          try {
            const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { version?: unknown };
            resolve(typeof body.version === 'string' ? { version: body.version } : { failure: 'answer without a version' });
          } catch {
            resolve({ failure: 'answer not JSON' });
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ failure: err.code ?? err.message }));
    req.end();
  });
}

/**
 * Sends `n` requests with `concurrency` in flight, as fast as they complete, recording into
 * `stats`. Stops early (resolving) when `signal` aborts.
 */
export async function runFixed(agent: Agent, t: LoadTarget, n: number, concurrency: number, stats: LoadStats, signal: AbortSignal): Promise<void> {
  let issued = 0;
  const worker = async (): Promise<void> => {
    while (issued < n && !signal.aborted) {
      issued++;
      stats.add(await sendOne(agent, t));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
}

/**
 * Sends requests at about `ratePerSecond` with up to `concurrency` in flight until `signal`
 * aborts; resolves when the last in-flight request has finished.
 */
export async function runPaced(agent: Agent, t: LoadTarget, ratePerSecond: number, concurrency: number, stats: LoadStats, signal: AbortSignal): Promise<void> {
  const gap = 1000 / ratePerSecond;
  let nextAt = Date.now();
  const worker = async (): Promise<void> => {
    while (!signal.aborted) {
      const now = Date.now();
      const at = Math.max(now, nextAt);
      nextAt = at + gap;
      if (at > now) await new Promise((r) => setTimeout(r, at - now));
      if (signal.aborted) break;
      stats.add(await sendOne(agent, t));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

/** The final summary: totals, rate, each version's count and share, failures by reason. */
export function formatSummary(stats: LoadStats, now = Date.now()): string {
  const seconds = Math.max(0.001, (now - stats.startedAt) / 1000);
  const ok = stats.total - stats.failed;
  const lines = [
    `${stats.total} requests in ${seconds.toFixed(1)} s (${Math.round(stats.total / seconds)} req/s): ` +
      `${ok} succeeded, ${stats.failed} failed`,
  ];
  const versions = new Set(['v1', 'v2', ...stats.versions.keys()]);
  for (const v of [...versions].sort()) {
    const n = stats.versions.get(v) ?? 0;
    lines.push(`  backend ${v.padEnd(4)} ${String(n).padStart(7)}  ${pct(n, ok).padStart(6)}`);
  }
  if (stats.failed > 0) {
    const reasons = [...stats.failures].map(([why, n]) => `${n} × ${why}`).join(', ');
    lines.push(`  failed       ${String(stats.failed).padStart(7)}  (${reasons})`);
  }
  return lines.join('\n') + '\n';
}

/** The live line: totals, errors, v1/v2 shares and req/s over the last few seconds. */
export function formatLiveLine(stats: LoadStats, now = Date.now()): string {
  const { counts, seconds } = stats.recent(now);
  const v1 = counts.get('v1') ?? 0;
  const v2 = counts.get('v2') ?? 0;
  const failed = counts.get('!failed') ?? 0;
  const served = [...counts].filter(([k]) => k !== '!failed').reduce((a, [, n]) => a + n, 0);
  const rate = Math.round((served + failed) / seconds);
  return (
    `requests ${stats.total}  errors ${stats.failed}  |  last ${Math.max(1, Math.round(seconds))} s: ` +
    `v1 ${pct(v1, served)}  v2 ${pct(v2, served)}  ${rate} req/s`
  );
}
