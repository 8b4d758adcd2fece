#!/usr/bin/env node
// `npm run bench`: runs each `bench/*.mjs` in turn (never part of `npm test`), or says there are
// none. Exits with the first failing benchmark's status, else 0.
//
// Routing of flags: `--no-ca` skips bench/ca-issuance.mjs and `--ca-only` runs only it; flags
// starting with `--ca-` go to the CA benchmark only; every other flag goes to the others.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = join(root, 'bench');
const CA_BENCH = 'ca-issuance.mjs';
const argv = process.argv.slice(2);
const noCa = argv.includes('--no-ca');
const caOnly = argv.includes('--ca-only');
if (noCa && caOnly) {
  console.error('--no-ca and --ca-only leave nothing to run');
  process.exit(2);
}
const caArgs = [];
const otherArgs = [];
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--no-ca' || a === '--ca-only') continue;
  if (a.startsWith('--ca-')) {
    caArgs.push(a, argv[++i]); // every --ca- flag takes a value
  } else {
    otherArgs.push(a);
  }
}
const benches = (existsSync(benchDir) ? readdirSync(benchDir).filter((n) => n.endsWith('.mjs')).sort() : [])
  .filter((n) => (n === CA_BENCH ? !noCa : !caOnly));
if (benches.length === 0) {
  console.log('no benchmarks yet');
  process.exit(0);
}
for (const name of benches) {
  console.log(`== bench/${name}`);
  const args = name === CA_BENCH ? caArgs : otherArgs;
  const r = spawnSync(process.execPath, [join(benchDir, name), ...args], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
