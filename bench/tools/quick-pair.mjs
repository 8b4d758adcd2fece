// Developer loop, not part of `npm run bench` (which runs bench/*.mjs only): nginx, the Weft pair
// and the HAProxy pair, then alternating `wrk` runs against (b) and (c) so both see the same
// machine. `node bench/tools/quick-pair.mjs [--seconds N] [--rounds N] [--profile]` after
// `npm run build`. Prints req/s per round, the (b)/(c) ratio and the two Weft sidecars' CPU time
// per request (utime+stime from /proc over each Weft run); HTTP/1.1 only. --profile: both
// sidecars under --cpu-prof, their top self time printed at the end.
// Tracing cost (docs/performance.md "Tracing: cost"): with WEFT_BENCH_TRACING="URL PERCENT" the
// control plane sends mesh tracing; a URL on 127.0.0.1 gets a local OTLP sink here that reads each
// export and answers 200 (it counts exports and bytes, and does not decode them).
// `--traced "URL PERCENT"`: a second Weft pair (its own control plane with that tracing, sidecars
// and nginx on 127.30.4.x) beside the untraced one, and each round runs both back to back (their
// order alternating), so the tracing cost is read on the same machine state: CPU µs/request and
// req/s of each, and traced/untraced.
// `--grpc`: gRPC unary instead (the bench's gRPC upstream, h2load -c4 -m8 as the bench runs it, the
// HAProxy pair in HTTP/2 mode); prints calls/s, the (b)/(c) ratio and CPU µs per call.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { printTop } from '../lib/cpu-profile-top.mjs';
import { runWrk } from '../lib/load-wrk.mjs';
import { runH2load } from '../lib/load-h2load.mjs';
import { installCleanup, sleep, start, stopAll, waitFor } from '../lib/procs.mjs';
import { startHaproxyPair } from '../lib/proxy-haproxy.mjs';
import { grpcAuthority, SERVICE_HOST, startWeftPair } from '../lib/proxy-weft.mjs';
import { rssMb } from '../lib/rss.mjs';
import { startNginx } from '../lib/upstream-nginx.mjs';
import { startOtlpSink } from './otlp-sink.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const IP = { cp: '127.30.2.1', client: '127.30.2.11', server: '127.30.2.21', ha1: '127.30.3.11', ha2: '127.30.3.21' };
const arg = (name, d) => { const i = process.argv.indexOf(name); return i > 0 ? Number(process.argv[i + 1]) : d; };
const seconds = arg('--seconds', 4);
const rounds = arg('--rounds', 2);
const profile = process.argv.includes('--profile');
const grpcMode = process.argv.includes('--grpc');
const tracedAt = process.argv.includes('--traced') ? process.argv[process.argv.indexOf('--traced') + 1] : undefined;
const IP2 = { cp: '127.30.4.1', client: '127.30.4.11', server: '127.30.4.21' };
/** utime+stime of a process, in µs (/proc/PID/stat fields 14 and 15, in clock ticks of 10 ms). */
const cpuUs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10_000;
};
/** stime alone (the kernel's share: socket calls), in µs. */
const sysUs = (pid) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[12]) * 10_000;
// `--traced none`: the second pair without tracing (an A/A check of the two pairs).
const tracingSpec = tracedAt === 'none' ? undefined : tracedAt ?? process.env.WEFT_BENCH_TRACING;
const tracingUrl = tracingSpec ? new URL(tracingSpec.split(' ')[0]) : undefined;
let sink;
if (tracingUrl?.hostname === '127.0.0.1') {
  sink = await startOtlpSink('127.0.0.1', Number(tracingUrl.port));
  sink.server.unref();
  console.log(`tracing ${tracingSpec}: OTLP sink on ${tracingUrl.host}`);
}
installCleanup((60 + rounds * 3 * (seconds + 2)) * 1000 + 60_000);
const dir = mkdtempSync(join(tmpdir(), 'weft-quick-'));
await startNginx(dir, IP.server, 8080);
if (grpcMode) {
  const g = start('grpc server', process.execPath, [join(ROOT, 'bench/lib/grpc-server.mjs'), `${IP.server}:9090`], { logPath: join(dir, 'grpc-server.log'), pdeathsig: false, stdinPipe: true });
  await waitFor(g, async () => /listening/.test(readFileSync(join(dir, 'grpc-server.log'), 'utf8')), 'listening');
}
await startHaproxyPair(dir, [
  { listen: `${IP.ha1}:8000`, next: `${IP.ha2}:8000`, grpc: grpcMode && { listen: `${IP.ha1}:9000`, next: `${IP.ha2}:9000` } },
  { listen: `${IP.ha2}:8000`, next: `${IP.server}:8080`, grpc: grpcMode && { listen: `${IP.ha2}:9000`, next: `${IP.server}:9090` } },
]);
const weft = await startWeftPair(dir, { root: ROOT, cpIp: IP.cp, clientIp: IP.client, serverIp: IP.server, appPort: 8080, grpcPort: 9090, cpuProf: profile });
let traced;
if (tracedAt) {
  const dir2 = join(dir, 'traced');
  mkdirSync(dir2);
  await startNginx(dir2, IP2.server, 8080);
  if (tracingSpec) process.env.WEFT_BENCH_TRACING = tracingSpec;
  traced = await startWeftPair(dir2, { root: ROOT, cpIp: IP2.cp, clientIp: IP2.client, serverIp: IP2.server, appPort: 8080, grpcPort: 9090, cpuProf: profile });
  delete process.env.WEFT_BENCH_TRACING;
}
await sleep(1500);
console.log(`rss idle: server ${rssMb(weft.server.child.pid).toFixed(1)} MB, client ${rssMb(weft.client.child.pid).toFixed(1)} MB`);
const w = { url: `http://${IP.client}:15001/`, host: SERVICE_HOST };
const h = { url: `http://${IP.ha1}:8000/` };
/** One wrk run through a Weft pair: req/s, p99 and each sidecar's CPU µs per request. */
async function weftRun(pair, url) {
  const pids = [pair.client.child.pid, pair.server.child.pid];
  const before = pids.map(cpuUs);
  const sysBefore = pids.map(sysUs);
  const own = process.cpuUsage(); // this process: the OTLP sink, when there is one
  const a = await runWrk(url, { host: w.host, seconds });
  const cpu = pids.map((pid, i) => cpuUs(pid) - before[i]);
  const sys = pids.map((pid, i) => sysUs(pid) - sysBefore[i]);
  const ownUs = process.cpuUsage(own);
  const requests = Number(/(\d+) requests in/.exec(a.raw)?.[1]);
  return { ...a, cpu: cpu.map((us) => us / requests), sys: sys.map((us) => us / requests), sinkCpu: (ownUs.user + ownUs.system) / requests };
}
const show = (r) => `${r.rps.toFixed(0)} req/s (errors ${r.errors}), p99 ${r.latencyMs.p99} ms, CPU/request client ${r.cpu[0].toFixed(1)} µs (sys ${r.sys[0].toFixed(1)}) + server ${r.cpu[1].toFixed(1)} µs (sys ${r.sys[1].toFixed(1)})${sink ? `, sink ${r.sinkCpu.toFixed(1)} µs` : ''}`;
const tracedUrl = `http://${IP2.client}:15001/`;
if (grpcMode) {
  const weftUrl = `http://${IP.client}:15001`;
  const haUrl = `http://${IP.ha1}:9000`;
  const h2 = (url, authority, secs) => runH2load(url, { seconds: secs, warmupSeconds: 0, dir, ...(authority ? { authority } : {}) });
  await h2(weftUrl, grpcAuthority(9090), 2);
  for (let r = 0; r < rounds; r++) {
    const pids = [weft.client.child.pid, weft.server.child.pid];
    const before = pids.map(cpuUs);
    const a = await h2(weftUrl, grpcAuthority(9090), seconds);
    const cpu = pids.map((pid, i) => (cpuUs(pid) - before[i]) / a.succeeded);
    const b = await h2(haUrl, undefined, seconds);
    if (process.env.QP_DEBUG) console.log(a.raw, b.raw);
    console.log(`round ${r + 1}: weft ${a.rps.toFixed(0)} calls/s (errors ${a.errors}), haproxy ${b.rps.toFixed(0)} calls/s, ratio ${(100 * a.rps / b.rps).toFixed(1)} %, CPU/call client ${cpu[0].toFixed(1)} µs + server ${cpu[1].toFixed(1)} µs`);
  }
  console.log(`rss after: server ${rssMb(weft.server.child.pid).toFixed(1)} MB, client ${rssMb(weft.client.child.pid).toFixed(1)} MB`);
  await stopAll();
  if (profile) {
    for (const f of readdirSync(join(dir, 'cpu-prof')).sort()) printTop(join(dir, 'cpu-prof', f), 25);
    console.log(`profiles in ${join(dir, 'cpu-prof')}`);
  } else rmSync(dir, { recursive: true, force: true });
  process.exit(0);
}
await runWrk(w.url, { host: w.host, seconds: 2 });
if (traced) await runWrk(tracedUrl, { host: w.host, seconds: 2 });
for (let r = 0; r < rounds; r++) {
  if (traced) {
    const first = r % 2 === 0 ? 'off' : 'traced';
    const x = first === 'off' ? await weftRun(weft, w.url) : undefined;
    const t = await weftRun(traced, tracedUrl);
    const a = x ?? (await weftRun(weft, w.url));
    const b = await runWrk(h.url, { seconds });
    const cpuOff = a.cpu[0] + a.cpu[1];
    const cpuOn = t.cpu[0] + t.cpu[1];
    console.log(`round ${r + 1} (${first} first): weft ${show(a)}; traced ${show(t)}; haproxy ${b.rps.toFixed(0)} req/s`);
    console.log(`  traced/untraced: req/s ${(100 * t.rps / a.rps).toFixed(1)} %, CPU/request ${(100 * cpuOn / cpuOff).toFixed(1)} % (${cpuOff.toFixed(1)} -> ${cpuOn.toFixed(1)} µs for both sidecars)`);
    continue;
  }
  const a = await weftRun(weft, w.url);
  const b = await runWrk(h.url, { seconds });
  console.log(`round ${r + 1}: weft ${a.rps.toFixed(0)} req/s (errors ${a.errors}), haproxy ${b.rps.toFixed(0)} req/s, ratio ${(100 * a.rps / b.rps).toFixed(1)} %, p99 weft ${a.latencyMs.p99} ms, CPU/request client ${a.cpu[0].toFixed(1)} µs + server ${a.cpu[1].toFixed(1)} µs${sink ? `, sink ${a.sinkCpu.toFixed(1)} µs` : ''}`);
}
console.log(`rss after: server ${rssMb(weft.server.child.pid).toFixed(1)} MB, client ${rssMb(weft.client.child.pid).toFixed(1)} MB`);
if (sink) console.log(`OTLP sink: ${sink.counts.posts} exports, ${(sink.counts.bytes / 1e6).toFixed(1)} MB`);
await stopAll();
if (profile) {
  for (const f of readdirSync(join(dir, 'cpu-prof')).sort()) printTop(join(dir, 'cpu-prof', f), 25);
  console.log(`profiles in ${join(dir, 'cpu-prof')}`);
}
else rmSync(dir, { recursive: true, force: true });
process.exit(0);
