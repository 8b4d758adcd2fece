/**
 * Runs many fuzz cases (http-fuzz-gen.ts) through the oracle (http-fuzz-oracle.ts): several
 * outbound and inbound listeners, each with its own raw upstream, take cases in turn, so a case's
 * upstream traffic is never confused with another's. Shared by `npm test` (http-fuzz.test.ts) and
 * the long run (`npm run fuzz`, scripts/run-fuzz.mjs).
 */
import { generateCase, type FuzzCase } from './http-fuzz-gen';
import { parseStream } from './http-fuzz-ref';
import { FUZZ_REF_LIMITS, KNOWN_ISSUES, runCase, startFuzzTarget, type CaseResult, type Finding, type FuzzTarget } from './http-fuzz-oracle';

export interface FuzzRunOptions {
  readonly seed: number;
  readonly cases: number;
  /** First case index (default 0): `--seed S --from I --cases 1` replays case I alone. */
  readonly from?: number;
  /** Listener pairs run in parallel (default 4: two outbound, two inbound). */
  readonly workers?: number;
  /** Called for every case with a finding, as it happens. */
  readonly onFailure?: (c: FuzzCase, direction: string, r: CaseResult) => void;
  readonly onProgress?: (done: number) => void;
}

export interface FuzzFailure {
  readonly seed: number;
  readonly index: number;
  readonly direction: string;
  readonly findings: Finding[];
  readonly steps: readonly string[];
  readonly bytes: string;
  readonly statuses: number[];
}

export interface FuzzSummary {
  readonly cases: number;
  readonly failures: FuzzFailure[];
  /** Soft disagreements (another refusal status than the reference's), by text. */
  readonly notes: Map<string, number>;
  /** Statuses the client read, by code: what the run exercised. */
  readonly statuses: Map<number, number>;
  /** How the reference classified the cases' ends. */
  readonly refEnds: Map<string, number>;
  /** Cases explained by a known issue (KNOWN_ISSUES), by id. */
  readonly known: Map<string, number>;
  /** Uncaught exceptions or unhandled rejections raised while the run was going. */
  readonly uncaught: string[];
  readonly ms: number;
}

/** How the failure reads in a log: the replay line first. */
export function describeFailure(f: FuzzFailure): string {
  return [
    `case ${f.index} of seed ${f.seed} (${f.direction}); replay: npm run fuzz -- --seed ${f.seed} --from ${f.index} --cases 1`,
    ...f.findings.map((x) => `  ${x.kind}: ${x.detail}`),
    `  statuses: ${f.statuses.join(',') || '-'}`,
    `  steps: ${f.steps.join(' | ') || 'none'}`,
    `  bytes (${f.bytes.length}): ${JSON.stringify(f.bytes.length > 600 ? `${f.bytes.slice(0, 600)}…` : f.bytes)}`,
  ].join('\n');
}

export async function runFuzz(opts: FuzzRunOptions): Promise<FuzzSummary> {
  const started = Date.now();
  const uncaught: string[] = [];
  const known = new Map<string, number>();
  const bump = <K>(m: Map<K, number>, k: K): void => void m.set(k, (m.get(k) ?? 0) + 1);
  const onUncaught = (e: unknown): void => {
    const text = e instanceof Error ? e.stack ?? e.message : String(e);
    const issue = KNOWN_ISSUES.find((k) => k.uncaught?.test(text));
    if (issue) bump(known, `${issue.id} (uncaught exception)`);
    else uncaught.push(text);
  };
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  const workers = opts.workers ?? 4;
  const targets: FuzzTarget[] = [];
  for (let i = 0; i < workers; i++) targets.push(await startFuzzTarget(i % 2 === 0 ? 'outbound' : 'inbound'));
  const failures: FuzzFailure[] = [];
  const notes = new Map<string, number>();
  const statuses = new Map<number, number>();
  const refEnds = new Map<string, number>();
  const from = opts.from ?? 0;
  let next = from;
  let done = 0;
  try {
    await Promise.all(
      targets.map(async (first, w) => {
        let target = first;
        while (next < from + opts.cases) {
          const index = next++;
          const c = generateCase(opts.seed, index, FUZZ_REF_LIMITS);
          const crash = KNOWN_ISSUES.find((k) => k.uncaught && k.matches(parseStream(c.bytes, FUZZ_REF_LIMITS).messages, [], parseStream(c.bytes, FUZZ_REF_LIMITS), c.bytes));
          if (crash) {
            bump(known, `${crash.id} (skipped: would throw)`);
            opts.onProgress?.(++done);
            continue;
          }
          const r = await runCase(target, c);
          if (r.known) {
            bump(known, r.known);
            // The known bug may have poisoned an upstream connection: start this pair afresh.
            await target.close();
            target = targets[w] = await startFuzzTarget(target.direction);
          }
          for (const s of r.statuses) bump(statuses, s);
          for (const n of r.notes) bump(notes, n.replace(/^request \d+: /, ''));
          bump(refEnds, r.ref.end.kind === 'reject' ? `reject: ${r.ref.end.why}` : r.ref.end.kind);
          if (r.findings.length) {
            failures.push({ seed: opts.seed, index, direction: target.direction, findings: r.findings, steps: c.steps, bytes: c.bytes, statuses: r.statuses });
            opts.onFailure?.(c, target.direction, r);
          }
          opts.onProgress?.(++done);
        }
      }),
    );
  } finally {
    await Promise.all(targets.map((t) => t.close()));
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
  }
  return { cases: opts.cases, failures, notes, statuses, refEnds, known, uncaught, ms: Date.now() - started };
}
