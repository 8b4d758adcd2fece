import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createLogger, silentLogger, type Logger } from '@weft/api';
import { FilesRegistry, type FilesSnapshot } from '../src/registry-files';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function tempDir(files: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'weft-files-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) write(dir, name, text);
  return dir;
}

function write(dir: string, name: string, text: string): void {
  fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
  fs.writeFileSync(path.join(dir, name), text);
}

const svc = (name: string, ns = 'shop'): string =>
  `apiVersion: v1\nkind: Service\nmetadata:\n  name: ${name}\n  namespace: ${ns}\nspec:\n  selector: {app: ${name}}\n  ports: [{port: 80}]\n`;

const names = (s: FilesSnapshot): string[] => s.objects.map((o) => `${o.kind}/${o.meta.name}`);

/** A registry with a log whose lines are kept; closed after the test. */
async function started(dir: string, t: { after(fn: () => Promise<void>): void }, log?: Logger): Promise<FilesRegistry> {
  const reg = new FilesRegistry(dir, log ?? silentLogger);
  t.after(() => reg.close());
  await reg.start();
  return reg;
}

function capturingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { log: createLogger({}, (l) => lines.push(JSON.parse(l) as Record<string, unknown>), 0), lines };
}

/** Resolves with the first snapshot (current or later) that satisfies `pred`. */
function waitFor(reg: FilesRegistry, pred: (s: FilesSnapshot) => boolean, timeoutMs = 1000): Promise<FilesSnapshot> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no matching snapshot within ${timeoutMs} ms; last: ${JSON.stringify(reg.current())}`));
    }, timeoutMs);
    const off = reg.onChange((s) => {
      if (!pred(s)) return;
      clearTimeout(timer);
      queueMicrotask(() => off());
      resolve(s);
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('loads every yaml, yml and json file under the directory, in path order and document order', async (t) => {
  const dir = tempDir({
    'b.yaml': `${svc('b1')}---\n${svc('b2')}`,
    'a/z.yml': svc('az'),
    'a.json': JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'aj', namespace: 'shop' }, status: { podIP: '127.0.0.5' } }),
    'notes.txt': svc('txt'),
    '.hidden.yaml': svc('hidden'),
    '..data/x.yaml': svc('configmap-volume-internals'),
    'c.yaml': '# only a comment\n---\n',
  });
  const reg = await started(dir, t);
  const snap = reg.current();
  assert.deepEqual(names(snap), ['Pod/aj', 'Service/az', 'Service/b1', 'Service/b2']);
  assert.deepEqual(snap.diagnostics, []);
  assert.equal(snap.generation, 1);
});

test('a YAML syntax error is reported with its line while other files and documents still apply', async (t) => {
  const dir = tempDir({
    'broken.yaml': `${svc('before')}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: broken\n  labels: {a: b\nspec: {}\n---\n${svc('after')}`,
    'good.yaml': svc('good'),
  });
  const reg = await started(dir, t);
  const snap = reg.current();
  assert.deepEqual(names(snap), ['Service/before', 'Service/after', 'Service/good']);
  assert.equal(snap.diagnostics.length, 1);
  const [d] = snap.diagnostics;
  assert.equal(d.file, 'broken.yaml');
  assert.equal(d.severity, 'error');
  // The yaml library places an unclosed flow map where it notices it: the next line.
  assert.equal(d.line, 15);
  assert.match(d.reason, /^YAML syntax error: Flow map .* at line 15, column 1$/);
});

test('an unknown kind is reported with file, line and reason; kinds Weft ignores are skipped quietly', async (t) => {
  const dir = tempDir({
    'mixed.yaml': `${svc('fine')}---\napiVersion: example.com/v1\nkind: Gizmo\nmetadata: {name: g}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n`,
  });
  const reg = await started(dir, t);
  assert.deepEqual(names(reg.current()), ['Service/fine']);
  assert.deepEqual(reg.current().diagnostics, [
    { file: 'mixed.yaml', line: 10, severity: 'error', reason: 'unknown kind "Gizmo" (apiVersion "example.com/v1")' },
  ]);
});

test('a schema violation is reported with its field path and the line its document starts on, and logged once', async (t) => {
  const policy = `# a comment
apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: web, namespace: shop}
spec:
  targetRef: {kind: Service, name: web}
  subsets: [{name: v1, labels: {version: v1}}]
  routes:
  - name: default
    backends: [{subset: v1, weight: 500}]
`;
  const dir = tempDir({ 'policy.yaml': policy, 'web.yaml': svc('web') });
  const { log, lines } = capturingLogger();
  const reg = await started(dir, t, log);
  assert.deepEqual(names(reg.current()), ['Service/web']);
  assert.deepEqual(reg.current().diagnostics, [
    { file: 'policy.yaml', line: 2, severity: 'error', reason: 'spec.routes[0].backends[0].weight: must be an integer between 0 and 100' },
  ]);
  const warnings = lines.filter((l) => l.level === 'warn' && l.file === 'policy.yaml');
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0].line, 2);
  assert.match(String(warnings[0].reason), /spec\.routes\[0\]\.backends\[0\]\.weight/);
});

test('of two documents defining one object the first wins, and the second is an error naming both places', async (t) => {
  const dir = tempDir({ 'a.yaml': svc('web'), 'b.yaml': `${svc('other')}---\n${svc('web')}` });
  const reg = await started(dir, t);
  assert.deepEqual(names(reg.current()), ['Service/web', 'Service/other']);
  assert.deepEqual(reg.current().diagnostics, [
    { file: 'b.yaml', line: 10, severity: 'error', reason: 'duplicate Service shop/web: defined at a.yaml:1 (kept) and at b.yaml:10 (skipped)' },
  ]);
});

test('a policy with fault injection (enforced since issue 3) applies without a warning', async (t) => {
  const dir = tempDir({
    'p.yaml': 'apiVersion: weft.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: web}\nspec:\n  targetRef: {kind: Service, name: web}\n  routes:\n  - name: r\n    backends: [{service: web, port: 80}]\n    fault: {abort: {percent: 1, httpStatus: 503}}\n',
  });
  const reg = await started(dir, t);
  assert.deepEqual(names(reg.current()), ['TrafficPolicy/web']);
  assert.deepEqual(reg.current().diagnostics, []);
});

test('an AuthorizationPolicy is loaded; an invalid one is reported with file, line and reason and skipped, never half-applied', async (t) => {
  const dir = tempDir({
    'authz.yaml': 'apiVersion: weft.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: deny-all, namespace: shop}\nspec: {action: DENY, rules: [{}]}\n' +
      '---\napiVersion: weft.dev/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: bad, namespace: shop}\nspec:\n  action: DENY\n  rules: [{to: [{paths: [admin]}]}]\n',
  });
  const reg = await started(dir, t);
  assert.deepEqual(names(reg.current()), ['AuthorizationPolicy/deny-all']);
  assert.deepEqual(reg.current().diagnostics.map((d) => [d.file, d.line, d.severity]), [['authz.yaml', 6, 'error']]);
  assert.match(reg.current().diagnostics[0]!.reason, /spec.rules\[0\].to\[0\].paths\[0\]: must start with \//);
});

test('the items of a v1 List are loaded one by one', async (t) => {
  const dir = tempDir({
    'list.yaml': `apiVersion: v1\nkind: List\nitems:\n- ${svc('one').trimEnd().split('\n').join('\n  ')}\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: bad-ip}\n  status: {podIP: nope}\n`,
  });
  const reg = await started(dir, t);
  assert.deepEqual(names(reg.current()), ['Service/one']);
  assert.deepEqual(reg.current().diagnostics, [{ file: 'list.yaml', line: 12, severity: 'error', reason: 'status.podIP: must be an IP address' }]);
});

test('a file edit reaches subscribers within 1 s, and so does a new file in a new directory', async (t) => {
  const dir = tempDir({ 'web.yaml': svc('web') });
  const reg = await started(dir, t);
  let t0 = Date.now();
  const edited = waitFor(reg, (s) => names(s).includes('Service/web2'));
  write(dir, 'web.yaml', svc('web2'));
  await edited;
  assert.ok(Date.now() - t0 < 1000);

  t0 = Date.now();
  const added = waitFor(reg, (s) => names(s).includes('Service/deep'));
  write(dir, 'new/sub/deep.yaml', svc('deep'));
  const snap = await added;
  assert.ok(Date.now() - t0 < 1000);
  assert.deepEqual(names(snap), ['Service/deep', 'Service/web2']);
});

test('an atomic replace (write a temp file, rename over) is picked up', async (t) => {
  const dir = tempDir({ 'web.yaml': svc('web') });
  const reg = await started(dir, t);
  const seen = waitFor(reg, (s) => names(s).includes('Service/renamed'));
  fs.writeFileSync(path.join(dir, '.web.yaml.tmp'), svc('renamed'));
  fs.renameSync(path.join(dir, '.web.yaml.tmp'), path.join(dir, 'web.yaml'));
  assert.deepEqual(names(await seen), ['Service/renamed']);
});

test('deleting a file removes its objects', async (t) => {
  const dir = tempDir({ 'a.yaml': svc('a'), 'b.yaml': svc('b') });
  const reg = await started(dir, t);
  const gone = waitFor(reg, (s) => !names(s).includes('Service/b'));
  fs.rmSync(path.join(dir, 'b.yaml'));
  assert.deepEqual(names(await gone), ['Service/a']);
});

test('rewriting a file with the same content publishes nothing', async (t) => {
  const dir = tempDir({ 'a.yaml': svc('a') });
  const reg = await started(dir, t);
  const snapshots: FilesSnapshot[] = [];
  reg.onChange((s) => snapshots.push(s));
  write(dir, 'a.yaml', svc('a'));
  await sleep(500);
  assert.deepEqual(snapshots.map((s) => s.generation), [1]);
  assert.equal(reg.current().generation, 1);
});

test('a bad edit keeps the last valid version of the file\'s objects in effect until it is fixed', async (t) => {
  const dir = tempDir({ 'web.yaml': `${svc('keep')}---\n${svc('web')}` });
  const reg = await started(dir, t);
  const broken = waitFor(reg, (s) => s.diagnostics.length > 0);
  write(dir, 'web.yaml', `${svc('keep')}---\n${svc('web').replace('port: 80', 'port: 0')}`);
  const snap = await broken;
  assert.deepEqual(names(snap), ['Service/keep', 'Service/web']);
  assert.equal(snap.diagnostics[0].line, 10);
  assert.match(snap.diagnostics[0].reason, /spec\.ports\[0\]\.port: .*; until this file is fixed, its last valid Service shop\/web stays in effect/);

  const fixed = waitFor(reg, (s) => s.diagnostics.length === 0);
  write(dir, 'web.yaml', svc('keep'));
  assert.deepEqual(names(await fixed), ['Service/keep']);
});

test('onChange delivers the current snapshot at once when started, and stops after unsubscribing', async (t) => {
  const dir = tempDir({ 'a.yaml': svc('a') });
  const reg = new FilesRegistry(dir, silentLogger, { pollIntervalMs: 50, debounceMs: 10 });
  t.after(() => reg.close());
  const early: number[] = [];
  reg.onChange((s) => early.push(s.generation));
  assert.deepEqual(early, []);
  await reg.start();
  assert.deepEqual(early, [1]);
  const late: number[] = [];
  const off = reg.onChange((s) => late.push(s.generation));
  assert.deepEqual(late, [1]);
  off();
  const next = waitFor(reg, (s) => s.generation === 2);
  write(dir, 'a.yaml', svc('b'));
  await next;
  assert.deepEqual(late, [1]);
  assert.deepEqual(early, [1, 2]);
});

test('close() stops watching and polling, is idempotent, and start() after it rejects', async () => {
  const dir = tempDir({ 'a.yaml': svc('a') });
  const reg = new FilesRegistry(dir, silentLogger, { pollIntervalMs: 20, debounceMs: 5 });
  await reg.start();
  const calls: FilesSnapshot[] = [];
  reg.onChange((s) => calls.push(s));
  await Promise.all([reg.close(), reg.close()]);
  await reg.close();
  write(dir, 'b.yaml', svc('b'));
  await sleep(300);
  assert.equal(calls.length, 1);
  assert.deepEqual(names(reg.current()), ['Service/a']);
  await assert.rejects(reg.start(), /closed/);
});

test('start() rejects when the directory does not exist', async () => {
  const reg = new FilesRegistry(path.join(os.tmpdir(), 'weft-no-such-dir-' + process.pid), silentLogger);
  await assert.rejects(reg.start(), /manifest directory .*ENOENT/);
  await reg.close();
});
