#!/usr/bin/env node
// `npm run bench`: runs each `bench/*.mjs` in turn (never part of `npm test`), or says there are
// none. Exits with the first failing benchmark's status, else 0.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = join(root, 'bench');
const benches = existsSync(benchDir) ? readdirSync(benchDir).filter((n) => n.endsWith('.mjs')).sort() : [];
if (benches.length === 0) {
  console.log('no benchmarks yet');
  process.exit(0);
}
for (const name of benches) {
  console.log(`== bench/${name}`);
  const r = spawnSync(process.execPath, [join(benchDir, name), ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
