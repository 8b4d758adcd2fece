#!/usr/bin/env node
// `npm run fuzz -- [--cases N] [--seed S] [--from I] [--workers W]`: the long run of the HTTP/1.1
// differential fuzzer (docs/http-safety.md, "Fuzzing"). Builds first (npm's prefuzz), runs N cases
// (default 20000) from seed S (default: random, printed) starting at case I, prints each failing
// case with its replay line as it happens and a summary at the end; exits 1 on any failure or
// uncaught exception. `--from I --cases 1` replays one case.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const usage = 'usage: npm run fuzz -- [--cases N] [--seed S] [--from I] [--workers W]';
const opts = { cases: 20000, seed: Math.floor(Math.random() * 2 ** 32), from: 0, workers: 4 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const name = argv[i]?.replace(/^--/, '');
  const value = Number(argv[i + 1]);
  if (!(name in opts) || !Number.isInteger(value) || value < 0) {
    console.error(`run-fuzz: bad argument ${argv[i]} ${argv[i + 1] ?? ''}\n${usage}`);
    process.exit(2);
  }
  opts[name] = value;
}

const { runFuzz, describeFailure } = await import(pathToFileURL(join(root, 'sidecar/dist/test/http-fuzz-run.js')).href);
const { KNOWN_ISSUES } = await import(pathToFileURL(join(root, 'sidecar/dist/test/http-fuzz-oracle.js')).href);
console.log(`run-fuzz: seed ${opts.seed}, cases ${opts.from}..${opts.from + opts.cases - 1}, ${opts.workers} listener pairs`);
let last = Date.now();
const summary = await runFuzz({
  ...opts,
  onFailure: (c, direction, r) =>
    console.log(describeFailure({ seed: c.seed, index: c.index, direction, findings: r.findings, steps: c.steps, bytes: c.bytes, statuses: r.statuses })),
  onProgress: (done) => {
    if (Date.now() - last > 10_000) {
      last = Date.now();
      console.log(`run-fuzz: ${done}/${opts.cases}`);
    }
  },
});
const table = (m) => [...m].sort((a, b) => b[1] - a[1]).map(([k, n]) => `  ${String(n).padStart(6)}  ${k}`).join('\n') || '  none';
console.log(`\nrun-fuzz: ${summary.cases} cases in ${(summary.ms / 1000).toFixed(1)} s, ${summary.failures.length} failing, ${summary.uncaught.length} uncaught exceptions`);
console.log(`statuses the client read:\n${table(summary.statuses)}`);
console.log(`how the reference parser ended each case:\n${table(summary.refEnds)}`);
console.log(`refused with another status than the reference's (not a failure):\n${table(summary.notes)}`);
console.log(`known issues hit (not failures; see KNOWN_ISSUES):\n${table(summary.known)}`);
for (const k of KNOWN_ISSUES) if ([...summary.known.keys()].some((id) => id.startsWith(k.id))) console.log(`  ${k.id}: ${k.summary}`);
for (const u of summary.uncaught) console.log(`uncaught: ${u}`);
process.exit(summary.failures.length || summary.uncaught.length ? 1 : 0);
