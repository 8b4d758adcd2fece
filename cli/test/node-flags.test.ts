/**
 * The node flags the sidecar should start with (cli/src/node-flags.ts): `weft demo` spawns its
 * sidecars with them, and a sidecar started without them says which are missing.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { missingNodeFlags, nodeFlagsFor, SIDECAR_NODE_FLAGS } from '../src/node-flags';

const MAIN = join(__dirname, '..', 'src', 'main.js');

test('only the sidecar gets node flags, and they cap the young generation', () => {
  assert.deepEqual(nodeFlagsFor('sidecar'), SIDECAR_NODE_FLAGS);
  assert.ok(SIDECAR_NODE_FLAGS.some((f) => f.startsWith('--max-semi-space-size=')));
  for (const other of ['control-plane', 'demo', undefined]) assert.deepEqual(nodeFlagsFor(other), []);
});

test('flags count as given on the command line or in NODE_OPTIONS, whatever their value or spelling', () => {
  const rec = ['--max-semi-space-size=2', '--v8-pool-size=1'];
  assert.deepEqual(missingNodeFlags(rec, [], ''), rec);
  assert.deepEqual(missingNodeFlags(rec, ['--max-semi-space-size=4'], ''), ['--v8-pool-size=1']);
  assert.deepEqual(missingNodeFlags(rec, [], '--v8_pool_size=2 --max-semi-space-size=2'), []);
});

/** Starts `node [flags] main.js sidecar` with an unreachable control plane; returns its first stderr lines. */
async function sidecarLog(nodeFlags: readonly string[]): Promise<string> {
  const env = { ...process.env, WEFT_XDS_ADDRESS: '127.0.0.1:1', POD_NAME: 'p', POD_NAMESPACE: 'ns', POD_IP: '127.0.0.1', WEFT_LOG_LEVEL: 'info', NODE_OPTIONS: '' };
  const child = spawn(process.execPath, [...nodeFlags, MAIN, 'sidecar', '--admin-port', '0', '--health-port', '0'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const deadline = Date.now() + 20_000;
  while (!/sidecar started/.test(err) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGKILL');
  await once(child, 'exit').catch(() => undefined);
  assert.match(err, /sidecar started/, `the sidecar started: ${err}`);
  return err;
}

test('a sidecar started without the recommended flags logs which are missing; with them it says nothing', async () => {
  const bare = await sidecarLog([]);
  const line = bare.split('\n').find((l) => l.includes('recommended flags'));
  assert.ok(line, bare);
  assert.deepEqual(JSON.parse(line).missing, [...SIDECAR_NODE_FLAGS]);
  assert.doesNotMatch(await sidecarLog(SIDECAR_NODE_FLAGS), /recommended flags/);
});

test('the bench starts its sidecars with the same flags', () => {
  const bench = readFileSync(join(__dirname, '..', '..', '..', 'bench', 'lib', 'proxy-weft.mjs'), 'utf8');
  assert.match(bench, /SIDECAR_NODE_FLAGS/);
});
