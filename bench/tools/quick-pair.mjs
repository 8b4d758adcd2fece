// Developer loop, not part of `npm run bench` (which runs bench/*.mjs only): nginx, the Weft pair
// and the HAProxy pair, then alternating `wrk` runs against (b) and (c) so both see the same
// machine. `node bench/tools/quick-pair.mjs [--seconds N] [--rounds N] [--profile]` after
// `npm run build`. Prints req/s per round, the (b)/(c) ratio and the two Weft sidecars' CPU time
// per request (utime+stime from /proc over each Weft run); HTTP/1.1 only.
// Tracing cost (docs/performance.md "Tracing: cost"): with WEFT_BENCH_TRACING="URL PERCENT" the
// control plane sends mesh tracing; a URL on 127.0.0.1 gets a local OTLP sink here that reads each
// export and answers 200 (it counts exports and bytes, and does not decode them).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runWrk } from '../lib/load-wrk.mjs';
import { installCleanup, sleep, stopAll } from '../lib/procs.mjs';
import { startHaproxyPair } from '../lib/proxy-haproxy.mjs';
import { SERVICE_HOST, startWeftPair } from '../lib/proxy-weft.mjs';
import { rssMb } from '../lib/rss.mjs';
import { startNginx } from '../lib/upstream-nginx.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const IP = { cp: '127.30.2.1', client: '127.30.2.11', server: '127.30.2.21', ha1: '127.30.3.11', ha2: '127.30.3.21' };
const arg = (name, d) => { const i = process.argv.indexOf(name); return i > 0 ? Number(process.argv[i + 1]) : d; };
const seconds = arg('--seconds', 4);
const rounds = arg('--rounds', 2);
const profile = process.argv.includes('--profile');
/** utime+stime of a process, in µs (/proc/PID/stat fields 14 and 15, in clock ticks of 10 ms). */
const cpuUs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000;
};
const sink = { posts: 0, bytes: 0 };
const tracingUrl = process.env.WEFT_BENCH_TRACING ? new URL(process.env.WEFT_BENCH_TRACING.split(' ')[0]) : undefined;
if (tracingUrl?.hostname === '127.0.0.1') {
  const server = createServer((req, res) => {
    req.on('data', (c) => (sink.bytes += c.length));
    req.on('end', () => {
      sink.posts++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 }).end();
    });
  });
  await new Promise((resolve) => server.listen(Number(tracingUrl.port), '127.0.0.1', resolve));
  server.unref();
  console.log(`tracing ${process.env.WEFT_BENCH_TRACING}: OTLP sink on ${tracingUrl.host}`);
}
installCleanup((30 + rounds * 2 * (seconds + 2)) * 1000 + 60_000);
const dir = mkdtempSync(join(tmpdir(), 'weft-quick-'));
await startNginx(dir, IP.server, 8080);
await startHaproxyPair(dir, [
  { listen: `${IP.ha1}:8000`, next: `${IP.ha2}:8000` },
  { listen: `${IP.ha2}:8000`, next: `${IP.server}:8080` },
]);
const weft = await startWeftPair(dir, { root: ROOT, cpIp: IP.cp, clientIp: IP.client, serverIp: IP.server, appPort: 8080, grpcPort: 9090, cpuProf: profile });
await sleep(1500);
console.log(`rss idle: server ${rssMb(weft.server.child.pid).toFixed(1)} MB, client ${rssMb(weft.client.child.pid).toFixed(1)} MB`);
const w = { url: `http://${IP.client}:15001/`, host: SERVICE_HOST };
const h = { url: `http://${IP.ha1}:8000/` };
await runWrk(w.url, { host: w.host, seconds: 2 });
for (let r = 0; r < rounds; r++) {
  const pids = [weft.client.child.pid, weft.server.child.pid];
  const before = pids.map(cpuUs);
  const a = await runWrk(w.url, { host: w.host, seconds });
  const cpu = pids.map((pid, i) => cpuUs(pid) - before[i]);
  const requests = Number(/(\d+) requests in/.exec(a.raw)?.[1]);
  const b = await runWrk(h.url, { seconds });
  const per = cpu.map((us) => (us / requests).toFixed(1));
  console.log(`round ${r + 1}: weft ${a.rps.toFixed(0)} req/s (errors ${a.errors}), haproxy ${b.rps.toFixed(0)} req/s, ratio ${(100 * a.rps / b.rps).toFixed(1)} %, p99 weft ${a.latencyMs.p99} ms, CPU/request client ${per[0]} µs + server ${per[1]} µs`);
}
console.log(`rss after: server ${rssMb(weft.server.child.pid).toFixed(1)} MB, client ${rssMb(weft.client.child.pid).toFixed(1)} MB`);
if (tracingUrl) console.log(`OTLP sink: ${sink.posts} exports, ${(sink.bytes / 1e6).toFixed(1)} MB`);
await stopAll();
if (profile) console.log(`profiles in ${join(dir, 'cpu-prof')}`);
else rmSync(dir, { recursive: true, force: true });
process.exit(0);
