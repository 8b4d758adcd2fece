// Developer loop, not part of `npm run bench` (which runs bench/*.mjs only): nginx, the Weft pair
// and the HAProxy pair, then alternating `wrk` runs against (b) and (c) so both see the same
// machine. `node bench/tools/quick-pair.mjs [--seconds N] [--rounds N] [--profile]` after
// `npm run build`. Prints req/s per round and the (b)/(c) ratio, and each sidecar's CPU time per
// proxied request (utime+stime from /proc/PID/stat over the Weft wrk run ÷ wrk's request count);
// with --profile, the sidecars' top self time. HTTP/1.1 only.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { printTop } from '../lib/cpu-profile-top.mjs';
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
/** [utime, stime] of `pid` in µs (fields 14 and 15 of /proc/PID/stat, in clock ticks of 10 ms). */
const cpuUs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return [Number(f[11]) * 10_000, Number(f[12]) * 10_000];
};
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
const pids = { client: weft.client.child.pid, server: weft.server.child.pid };
for (let r = 0; r < rounds; r++) {
  const before = { client: cpuUs(pids.client), server: cpuUs(pids.server) };
  const a = await runWrk(w.url, { host: w.host, seconds });
  const requests = Number(/(\d+) requests in/.exec(a.raw)?.[1]);
  const perReq = (pod) => {
    const [u, s] = cpuUs(pids[pod]);
    const [u0, s0] = before[pod];
    return `${((u - u0 + s - s0) / requests).toFixed(1)} (user ${((u - u0) / requests).toFixed(1)})`;
  };
  const b = await runWrk(h.url, { seconds });
  console.log(`round ${r + 1}: weft ${a.rps.toFixed(0)} req/s (errors ${a.errors}), haproxy ${b.rps.toFixed(0)} req/s, ratio ${(100 * a.rps / b.rps).toFixed(1)} %, p99 weft ${a.latencyMs.p99} ms, CPU µs/request client ${perReq('client')} server ${perReq('server')}`);
}
console.log(`rss after: server ${rssMb(weft.server.child.pid).toFixed(1)} MB`);
await stopAll();
if (profile) {
  for (const f of readdirSync(join(dir, 'cpu-prof')).sort()) printTop(join(dir, 'cpu-prof', f), 25);
  console.log(`profiles in ${join(dir, 'cpu-prof')}`);
}
else rmSync(dir, { recursive: true, force: true });
process.exit(0);
