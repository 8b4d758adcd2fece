// In-process CPU cost of tracing per request (docs/performance.md "Tracing: cost"), apart from
// proxying: what a listener calls for one HTTP/1.1 request — startProxySpan, the upstream
// headers, the route/endpoint, end — for an unsampled and a sampled request, the sampled one
// including its export (OTLP protobuf posted to a sink in another process). After `npm run build`:
//   flock /tmp/weft-bench.lock node --max-semi-space-size=2 --single-threaded-gc bench/tools/trace-cpu.mjs [--requests N]
// (the sidecar's own node flags, cli/src/node-flags.ts). Prints CPU µs per request (process.cpuUsage).
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const dist = join(here, '..', '..', 'sidecar', 'dist', 'src');
const { startProxySpan } = require(join(dist, 'trace-span.js'));
const { configureTracing, TRACE_STATS } = require(join(dist, 'trace-stats.js'));
const { shutdownTracers } = require(join(dist, 'trace-tracer.js'));

const i = process.argv.indexOf('--requests');
const N = i > 0 ? Number(process.argv[i + 1]) : 100_000;
const PORT = 4398;
const sink = spawn(process.execPath, [join(here, 'otlp-sink.mjs'), String(PORT)], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise((resolve) => sink.stdout.once('data', resolve));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

configureTracing({ local: { namespace: 'bench', podName: 'client', spiffeId: 'spiffe://cluster.local/ns/bench/sa/client' } });
const SERVICE = 'server.bench.svc.cluster.local';
const route = { name: 'default' };
const raw = ['Host', SERVICE, 'User-Agent', 'wrk', 'Accept', '*/*'];
const headers = { host: SERVICE, 'user-agent': 'wrk', accept: '*/*' };
const target = { host: SERVICE, path: '/' };

for (const [what, ratio] of [['unsampled (0%)', 0], ['sampled (100%), export included', 1]]) {
  const spec = { name: 'virtualOutbound', direction: 'outbound', tracing: { endpoint: `http://127.0.0.1:${PORT}/v1/traces`, samplingRatio: ratio, serviceName: 'client', timeoutMs: 2000 } };
  const run = (n) => {
    for (let k = 0; k < n; k++) {
      const span = startProxySpan(spec, { method: 'GET', target, headers, socket: undefined, protocol: '1.1', grpc: false });
      span.rawHeaders(raw);
      span.upstream(route, `outbound|80||${SERVICE}`, '127.30.2.21:15006', 0);
      span.end(200);
    }
  };
  // Warm up below the queue bound, then 250 requests every 2 ms (at most 125,000/s: exports keep up, nothing dropped).
  for (let k = 0; k < 40; k++) {
    run(250);
    await sleep(2);
  }
  await sleep(1500);
  const dropped = TRACE_STATS.droppedTotal;
  const exported = TRACE_STATS.exportedTotal;
  const c0 = process.cpuUsage();
  for (let k = 0; k < N / 250; k++) {
    run(250);
    await sleep(2);
  }
  await sleep(1500); // the last exports
  const c = process.cpuUsage(c0);
  console.log(`${what}: ${((c.user + c.system) / N).toFixed(2)} µs CPU per request (${N} requests; ${TRACE_STATS.exportedTotal - exported} spans exported, ${TRACE_STATS.droppedTotal - dropped} dropped)`);
}
await shutdownTracers(500);
sink.kill('SIGTERM');
