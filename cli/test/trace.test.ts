/**
 * `weft trace`: the waterfall (a pure rendering of a span tree) and the command end to end — the
 * built CLI receiving real OTLP/HTTP protobuf from the sidecar's own exporter (trace-tracer.ts)
 * and printing the trace it was asked for.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderWaterfall, spanTree, type ShownSpan } from '../src/trace-waterfall';
import { meshTracer, shutdownTracers } from '@weft/sidecar/dist/src/trace-tracer';
import { startProxySpan } from '@weft/sidecar/dist/src/trace-span';
import type { HttpListener } from '@weft/sidecar/dist/src/config';
import { configureTracing } from '@weft/sidecar/dist/src/trace-stats';

const MAIN = join(__dirname, '..', 'src', 'main.js');
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

const span = (spanId: string, parentSpanId: string, service: string, kind: ShownSpan['kind'], startMs: number, endMs: number, extra: Partial<ShownSpan> = {}): ShownSpan => ({
  traceId: TRACE, spanId, parentSpanId, service, name: 'GET backend.demo.svc.cluster.local', kind,
  startNs: BigInt(startMs) * 1_000_000n, endNs: BigInt(endMs) * 1_000_000n, error: false, status: '200', note: '', ...extra,
});

test('the waterfall nests children under parents in start order, with bars on one time axis', () => {
  const spans = [
    span('d', 'c', 'db', 'server', 6, 9),
    span('b', 'a', 'backend', 'server', 2, 11),
    span('a', '', 'frontend', 'client', 0, 12),
    span('c', 'b', 'backend', 'client', 5, 10, { error: true, status: '503', note: 'UPSTREAM_CONNECT' }),
    span('x', 'missing', 'other', 'server', 1, 3),
  ];
  assert.deepEqual(spanTree(spans).map((t) => `${t.depth}${t.span.spanId}`), ['0a', '1b', '2c', '3d', '0x']);
  const lines = renderWaterfall(spans);
  assert.match(lines[0]!, new RegExp(`^trace ${TRACE}  5 spans  12.0 ms  db → backend → frontend → other  1 ERROR$`));
  assert.match(lines[1]!, /^  frontend client: GET backend\.demo\.svc\.cluster\.local\s+200\s+\|█{32}\|\s+12\.0 ms$/);
  assert.match(lines[2]!, /^    backend server: /);
  assert.match(lines[3]!, /^      backend client: .* ERR 503 +\| {13}!{13} *\| +5\.00 ms  UPSTREAM_CONNECT$/);
  assert.match(lines[4]!, /^        db server: .*\| {16}█{8} *\| +3\.00 ms$/);
  assert.match(lines[5]!, /^  other server: /, 'an orphan (parent never arrived) is shown as a root');
});

test('weft trace TRACE_ID receives the sidecars\' OTLP export and prints that trace as a waterfall, exit 0', async () => {
  const child = spawn(process.execPath, [MAIN, 'trace', TRACE, '--listen', '127.0.48.1:0', '--quiet', '300ms'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c));
  child.stderr.on('data', (c: Buffer) => (stderr += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    for (let i = 0; i < 100 && !/receiving .* on (http:\S+)/.test(stdout); i++) await new Promise((r) => setTimeout(r, 50));
    const url = /receiving .* on (http:\S+)/.exec(stdout)?.[1];
    assert.ok(url, `no receiving line:\n${stdout}\n${stderr}`);

    configureTracing({ local: { namespace: 'demo', podName: 'frontend-1' } });
    const frontendTracing = { endpoint: url, samplingRatio: 1, serviceName: 'frontend', timeoutMs: 2000 };
    const backendTracing = { endpoint: url, samplingRatio: 1, serviceName: 'backend', timeoutMs: 2000 };
    const frontend = meshTracer(frontendTracing, { namespace: 'demo', podName: 'frontend-1' });
    const backend = meshTracer(backendTracing, { namespace: 'demo', podName: 'backend-1' });
    // The sidecar's listeners' calls (trace-span.ts): the frontend's outbound hop, then the backend's inbound one.
    const out = { name: 'frontend-out', direction: 'outbound', tracing: frontendTracing } as unknown as HttpListener;
    const inb = { name: 'backend-in', direction: 'inbound', tracing: backendTracing } as unknown as HttpListener;
    const facts = (headers: Record<string, string>, host = 'backend.demo.svc.cluster.local') => ({ method: 'GET', target: { host, path: '/' }, headers, socket: undefined, protocol: '1.1' as const, grpc: false });
    const client = startProxySpan(out, facts({ traceparent: `00-${TRACE}-00f067aa0ba902b7-01` }));
    const sent = client.rawHeaders([]);
    const server = startProxySpan(inb, facts(Object.fromEntries(sent.flatMap((v, i) => (i % 2 ? [] : [[v, sent[i + 1]!]])))));
    server.end(503);
    client.end(200);
    // Another trace, which `weft trace TRACE_ID` must not show.
    startProxySpan(out, facts({}, 'other')).end(200);
    await Promise.all([frontend.flush(), backend.flush()]);

    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000))]);
    assert.equal(code, 0, `exit ${code}\n${stdout}\n${stderr}`);
    const shown = stdout.split('\n').filter((l) => l.startsWith('trace ') || l.startsWith('  '));
    assert.match(shown.find((l) => l.startsWith('trace '))!, new RegExp(`^trace ${TRACE}  2 spans  .* frontend → backend  1 ERROR$`));
    assert.match(stdout, /^  frontend client: GET backend\.demo\.svc\.cluster\.local +200 +\|/m);
    assert.match(stdout, /^    backend server: GET backend\.demo\.svc\.cluster\.local +ERR 503 +\| *!+ *\|/m);
    assert.doesNotMatch(stdout, /GET other/);
  } finally {
    child.kill('SIGKILL');
    await shutdownTracers(500);
  }
});

test('the demo\'s traces reach weft trace: frontend server → frontend client → backend server, in one trace', { timeout: 120_000 }, async () => {
  const viewer = spawn(process.execPath, [MAIN, 'trace', '--listen', '127.0.48.2:0', '--count', '1', '--quiet', '500ms'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let shown = '';
  viewer.stdout.on('data', (c: Buffer) => (shown += c));
  const viewerExited = new Promise<number | null>((resolve) => viewer.on('exit', (code) => resolve(code)));
  let demo: ReturnType<typeof spawn> | undefined;
  try {
    for (let i = 0; i < 100 && !/receiving .* on (http:\S+)/.test(shown); i++) await new Promise((r) => setTimeout(r, 50));
    const url = /receiving .* on (http:\S+)/.exec(shown)?.[1];
    assert.ok(url, shown);
    // 400 requests at 2% sampling: no sampled trace at all has probability 0.98^400 ≈ 3e-4.
    demo = spawn(process.execPath, [MAIN, 'demo', '--requests', '400', '--base-ip', '127.0.48', '--tracing-endpoint', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    demo.stdout!.on('data', (c: Buffer) => (out += c));
    const demoCode = await new Promise<number | null>((resolve) => demo!.on('exit', (code) => resolve(code)));
    assert.equal(demoCode, 0, out);
    const code = await Promise.race([viewerExited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 15_000))]);
    assert.equal(code, 0, `weft trace: ${code}\n${shown}`);
    assert.match(shown, /^trace [0-9a-f]{32}  3 spans  .* OK$/m);
    assert.match(shown, /^  frontend server: GET frontend\.demo\.svc\.cluster\.local +200 +\|/m);
    assert.match(shown, /^    frontend client: GET backend\.demo\.svc\.cluster\.local +200 +\|/m);
    assert.match(shown, /^      backend server: GET backend\.demo\.svc\.cluster\.local +200 +\|/m);
  } finally {
    viewer.kill('SIGKILL');
    demo?.kill('SIGKILL');
  }
});
