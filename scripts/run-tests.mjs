#!/usr/bin/env node
// `npm test`: runs every compiled test, `<workspace>/dist/test/**/*.test.js`, with
// `node --test --test-concurrency=2 [extra args] <files...>` and exits with node's status.
// Files are passed one by one because on Node 20 a directory argument would also run the
// non-test helpers (fixtures) in test/ folders. A compiled test whose `.ts` source is gone
// (tsc -b never deletes outputs) is skipped, so a deleted test cannot keep running.
// Extra arguments are passed to node: `npm test -- --test-name-pattern split`.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { workspaces } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

/** Every `*.test.js` under `dir`, recursively, sorted. */
function findTests(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...findTests(path));
    else if (entry.isFile() && entry.name.endsWith('.test.js')) out.push(path);
  }
  return out.sort();
}

const files = [];
for (const ws of workspaces) {
  const distTest = join(root, ws, 'dist', 'test');
  for (const file of findTests(distTest)) {
    const source = join(root, ws, 'test', relative(distTest, file)).replace(/\.js$/, '.ts');
    if (existsSync(source)) files.push(relative(root, file));
    else console.error(`run-tests: skipping ${relative(root, file)} (no ${relative(root, source)})`);
  }
}
if (files.length === 0) {
  console.error('run-tests: no compiled tests found under */dist/test/ (did the build run?)');
  process.exit(1);
}

// A hung test (or a handle a failed hook left open) must fail the run, never stall CI: each test
// and each file gets at most two minutes. (Not --test-force-exit: under load it let a file exit
// before all its tests had run, and the run still passed.)
const args = ['--test', '--test-concurrency=2', '--test-timeout=120000', ...process.argv.slice(2), ...files];
const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit' });
// Ctrl-C reaches the test runner through the terminal itself: wait for it to report. A SIGTERM
// sent to this process alone (a CI timeout) is passed on.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
