/**
 * The differential fuzzer, bounded (docs/http-safety.md, "Fuzzing"): generated HTTP/1.1 request
 * streams (http-fuzz-gen.ts) against real outbound and inbound listeners in front of a raw
 * recording upstream, judged by an independent reference parser (http-fuzz-ref.ts, oracle in
 * http-fuzz-oracle.ts). 1,500 cases from a fixed seed, then 500 from a fresh seed printed here so a
 * failure can be replayed with `npm run fuzz -- --seed S --from I --cases 1`. The long run is
 * `npm run fuzz -- --cases N [--seed S]`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeFailure, runFuzz, type FuzzSummary } from './http-fuzz-run';

const FIXED_SEED = 0x5eed_f022;

function report(s: FuzzSummary, seed: number): string {
  const known = [...s.known].map(([id, n]) => `${id} ×${n}`).join(', ') || 'none';
  const notes = [...s.notes].map(([n, k]) => `${n} ×${k}`).join('; ') || 'none';
  return `seed ${seed}: ${s.cases} cases in ${s.ms} ms, ${s.failures.length} failing; statuses ${JSON.stringify(Object.fromEntries(s.statuses))}; known issues: ${known}; other refusal statuses: ${notes}`;
}

async function fuzz(seed: number, cases: number): Promise<void> {
  const s = await runFuzz({ seed, cases });
  console.log(report(s, seed));
  assert.deepEqual(s.uncaught, [], 'no uncaught exception while fuzzing');
  assert.equal(s.failures.length, 0, `${s.failures.length} failing cases:\n${s.failures.slice(0, 10).map(describeFailure).join('\n')}`);
  // The run must have exercised both sides of the oracle: forwarded requests and refusals.
  assert.ok((s.statuses.get(200) ?? 0) > cases / 20, 'enough cases were forwarded');
  assert.ok((s.statuses.get(400) ?? 0) > cases / 5, 'enough cases were refused');
}

test(`1,500 fuzz cases from the fixed seed ${FIXED_SEED}: no crash, no hang, nothing refused reaches the upstream, forwarded requests are what the client sent`, async () => {
  await fuzz(FIXED_SEED, 1500);
});

test('500 fuzz cases from a fresh seed (printed, for replay)', async () => {
  const seed = Number(process.env.WEFT_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));
  console.log(`fresh fuzz seed: ${seed} (replay: WEFT_FUZZ_SEED=${seed}, or npm run fuzz -- --seed ${seed} --cases 500)`);
  await fuzz(seed, 500);
});
