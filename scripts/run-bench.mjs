#!/usr/bin/env node
// `npm run bench`: runs each `bench/*.mjs` in turn (never part of `npm test`), or says there are
// none. Exits with the first failing benchmark's status, else 0.
//
// Routing of flags: `--no-ca` skips bench/ca-issuance.mjs and `--ca-only` runs only it; flags
// starting with `--ca-` go to the CA benchmark only. Likewise `--no-scale` / `--scale-only` for
// bench/kube-scale.mjs, whose flags are `--services N` and those starting with `--scale-`.
// Every other flag goes to the others.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = join(root, 'bench');
const CA_BENCH = 'ca-issuance.mjs';
const SCALE_BENCH = 'kube-scale.mjs';
const argv = process.argv.slice(2);
const noCa = argv.includes('--no-ca');
const caOnly = argv.includes('--ca-only');
const noScale = argv.includes('--no-scale');
const scaleOnly = argv.includes('--scale-only');
if ((noCa && caOnly) || (noScale && scaleOnly) || (caOnly && scaleOnly)) {
  console.error('--no-ca/--ca-only and --no-scale/--scale-only: this combination leaves nothing to run');
  process.exit(2);
}
const caArgs = [];
const scaleArgs = [];
const otherArgs = [];
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (['--no-ca', '--ca-only', '--no-scale', '--scale-only'].includes(a)) continue;
  if (a.startsWith('--ca-')) {
    caArgs.push(a, argv[++i]); // every --ca- flag takes a value
  } else if (a === '--services' || a === '--scale-scoped-at' || a === '--scale-concurrency') {
    scaleArgs.push(a, argv[++i]);
  } else if (a.startsWith('--scale-')) {
    scaleArgs.push(a); // --scale-keep
  } else {
    otherArgs.push(a);
  }
}
const only = caOnly ? CA_BENCH : scaleOnly ? SCALE_BENCH : undefined;
const benches = (existsSync(benchDir) ? readdirSync(benchDir).filter((n) => n.endsWith('.mjs')).sort() : [])
  .filter((n) => (only ? n === only : !(n === CA_BENCH && noCa) && !(n === SCALE_BENCH && noScale)));
if (benches.length === 0) {
  console.log('no benchmarks yet');
  process.exit(0);
}
for (const name of benches) {
  console.log(`== bench/${name}`);
  const args = name === CA_BENCH ? caArgs : name === SCALE_BENCH ? scaleArgs : otherArgs;
  const r = spawnSync(process.execPath, [join(benchDir, name), ...args], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
