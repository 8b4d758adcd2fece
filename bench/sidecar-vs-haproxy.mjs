// `npm run bench`: HTTP/1.1 keep-alive and gRPC unary (h2c) through
//   (a) client -> nginx directly,
//   (b) client -> Weft sidecar pair (local mode) -> nginx,
//   (c) client -> haproxy pair (HTTP mode) -> nginx,
// measuring closed-loop max throughput (wrk / h2load), open-loop latency at a fixed rate
// (p50/p90/p99 from the scheduled send time) and the server-side sidecar's RSS idle and under
// load; prints a table and issue 3's targets as PASS/MISS. Addresses: 127.30.x.x only.
// Flags: --seconds N (per measurement, default 10), --rate N (default 1000), --connections N
// (wrk, default 32), --no-grpc, --no-http (gRPC only), --profile (sidecars under node --cpu-prof;
// numbers then skewed), --json FILE (write the results), --keep (keep the temp dir with every log).
// WEFT_BENCH_NODE_FLAGS replaces the node flags the sidecars run with (default: the CLI's
// SIDECAR_NODE_FLAGS, cli/src/node-flags.ts, as `weft demo` uses; set it empty for none).
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { printTop } from './lib/cpu-profile-top.mjs';
import { measureRows, pairVariants } from './lib/measure-rows.mjs';
import { ensurePackages } from './lib/packages.mjs';
import { installCleanup, onBail, sleep, start, stop, stopAll, waitFor } from './lib/procs.mjs';
import { startHaproxyPair } from './lib/proxy-haproxy.mjs';
import { grpcAuthority, SERVICE_HOST, startWeftPair } from './lib/proxy-weft.mjs';
import { checkTargets, printTable } from './lib/report.mjs';
import { idleRss, rssMb } from './lib/rss.mjs';
import { startNginx } from './lib/upstream-nginx.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const IP = { cp: '127.30.0.1', client: '127.30.0.11', server: '127.30.0.21', ha1: '127.30.1.11', ha2: '127.30.1.21' };
const APP_PORT = 8080;
const GRPC_PORT = 9090;

function parseArgs(argv) {
  const o = { seconds: 10, rate: 1000, connections: 32, grpc: true, http: true, profile: false, keep: false, json: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`${a} needs a positive number`);
      return v;
    };
    if (a === '--seconds') o.seconds = num();
    else if (a === '--rate') o.rate = num();
    else if (a === '--connections') o.connections = num();
    else if (a === '--no-grpc') o.grpc = false;
    else if (a === '--no-http') o.http = false;
    else if (a === '--profile') o.profile = true;
    else if (a === '--keep') o.keep = true;
    else if (a === '--json') o.json = argv[++i];
    else throw new Error(`unknown flag ${a} (see the comment at the top of bench/sidecar-vs-haproxy.mjs)`);
  }
  if (!o.grpc && !o.http) throw new Error('--no-grpc and --no-http leave nothing to measure');
  return o;
}

let opts;
try {
  opts = parseArgs(process.argv.slice(2));
} catch (e) {
  console.error(`bench: ${e.message}`);
  process.exit(2);
}
// Bounded: setup (~10 s) + per variant and protocol (2 s warm-up + 2 x (seconds + 1)), with slack.
installCleanup((60 + (opts.http ? 3 : 0) * (2 * opts.seconds + 6) + (opts.grpc ? 3 : 0) * (2 * opts.seconds + 6)) * 1000 + 60_000);
ensurePackages();
if (!existsSync(join(ROOT, 'cli/dist/src/main.js'))) {
  console.error('bench: cli/dist/src/main.js is missing; run `npm run build` first (npm run bench does)');
  process.exit(1);
}

const dir = mkdtempSync(join(tmpdir(), 'weft-bench-'));
onBail(() => (opts.keep ? console.error(`bench: logs kept in ${dir}`) : rmSync(dir, { recursive: true, force: true })));
const log = (m) => console.log(`bench: ${m}`);
log(`temp dir ${dir}; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}); node ${process.version}`);

// --- start everything ---------------------------------------------------------------------
const nginx = await startNginx(dir, IP.server, APP_PORT);
let grpcServer;
if (opts.grpc) {
  grpcServer = start('grpc server', process.execPath, [join(ROOT, 'bench/lib/grpc-server.mjs'), `${IP.server}:${GRPC_PORT}`], {
    logPath: join(dir, 'grpc-server.log'),
    pdeathsig: false,
    stdinPipe: true,
  });
  await waitFor(grpcServer, async () => /listening/.test(readFileSync(join(dir, 'grpc-server.log'), 'utf8')), 'listening');
}
await startHaproxyPair(dir, [
  { listen: `${IP.ha1}:8000`, next: `${IP.ha2}:8000`, grpc: opts.grpc && { listen: `${IP.ha1}:9000`, next: `${IP.ha2}:9000` } },
  { listen: `${IP.ha2}:8000`, next: `${IP.server}:${APP_PORT}`, grpc: opts.grpc && { listen: `${IP.ha2}:9000`, next: `${IP.server}:${GRPC_PORT}` } },
]);
const weft = await startWeftPair(dir, { root: ROOT, cpIp: IP.cp, clientIp: IP.client, serverIp: IP.server, appPort: APP_PORT, grpcPort: GRPC_PORT, cpuProf: opts.profile });
log(`up: nginx ${IP.server}:${APP_PORT}, haproxy ${IP.ha1}:8000 -> ${IP.ha2}:8000, weft ${IP.client}:15001 -> ${IP.server}:15006 (pids ${weft.client.child.pid}, ${weft.server.child.pid}; node flags: ${weft.nodeFlags.join(' ') || 'none'})`);

// The idle RSS of both sidecars before any traffic beyond the readiness probes: 2 s after ready
// (the start-up peak) and settled, 20 s after ready (what the target is checked against; rss.mjs).
const idle = await idleRss([weft.server.child.pid, weft.client.child.pid]);
const [rssIdle, rssIdleClient] = idle.settled;
log(`sidecar RSS idle (settled, 20 s): server ${rssIdle.toFixed(1)} MB, client ${rssIdleClient.toFixed(1)} MB; 2 s after ready: ${idle.startup.map((v) => v.toFixed(1)).join(' / ')} MB`);

const variantOpts = { ip: IP, appPort: APP_PORT, grpcPort: GRPC_PORT, host: SERVICE_HOST, authority: grpcAuthority(GRPC_PORT) };

// --- HTTP/1.1 -----------------------------------------------------------------------------
let http = {};
let rssLoad = NaN;
if (opts.http) {
  ({ rows: http, rss: rssLoad } = await measureRows('http', pairVariants('http', variantOpts), { opts, weftPid: weft.server.child.pid, log }));
}
await sleep(1000);
const rssAfter = rssMb(weft.server.child.pid);

// --- gRPC unary ---------------------------------------------------------------------------
// grpc-status is checked call by call and against the upstream's count (bench/lib/measure-rows.mjs).
let grpc = {};
let rssLoadGrpc = NaN;
if (opts.grpc) {
  const upstream = `http://${IP.server}:${GRPC_PORT}`;
  ({ rows: grpc, rss: rssLoadGrpc } = await measureRows('grpc', pairVariants('grpc', variantOpts), { opts, weftPid: weft.server.child.pid, log, dir, upstream, path: '/bench.Bench/Unary' }));
}

// --- report -------------------------------------------------------------------------------
if (opts.http) printTable(`HTTP/1.1 keep-alive: closed loop wrk -t1 -c${opts.connections}; latency open loop at ${opts.rate} req/s (from scheduled time)`, [http.direct, http.weft, http.haproxy]);
else console.log('\nHTTP/1.1: skipped (--no-http)');
if (opts.grpc) printTable(`gRPC unary (h2c): closed loop h2load -c4 -m8; latency open loop at ${opts.rate} req/s (from scheduled time)`, [grpc.direct, grpc.weft, grpc.haproxy]);
else console.log('\ngRPC unary: skipped (--no-grpc)');
console.log(
  `\nserver-side sidecar RSS: idle ${rssIdle.toFixed(1)} MB, peak under HTTP/1.1 load ${rssLoad.toFixed(1)} MB, 1 s after it ${rssAfter.toFixed(1)} MB, ` +
    `peak under gRPC load ${rssLoadGrpc.toFixed(1)} MB (client-side idle ${rssIdleClient.toFixed(1)} MB)`,
);
const ratios = (rows) => ['weft', 'haproxy'].map((k) => `${k}: throughput ${((100 * rows[k].rps) / rows.direct.rps).toFixed(0)}% of direct, p99 +${(rows[k].lat.p99 - rows.direct.lat.p99).toFixed(3)} ms over direct`).join('; ');
if (opts.http) console.log(`HTTP/1.1 ratios: ${ratios(http)}`);
if (opts.grpc) console.log(`gRPC ratios: ${ratios(grpc)}`);
const checks = {
  ...(opts.http ? { http: checkTargets('HTTP/1.1', { ...http, rssIdle, rssLoad }) } : {}),
  ...(opts.grpc ? { grpc: checkTargets('gRPC unary', { ...grpc, rssIdle: opts.http ? undefined : rssIdle, rssLoad: rssLoadGrpc }) } : {}),
};

if (opts.json) writeFileSync(opts.json, JSON.stringify({ opts, nodeFlags: weft.nodeFlags, http, grpc, rssIdle, rssLoad, rssLoadGrpc, rssAfter, rssIdleClient, checks }, null, 2));

// --- shut down ----------------------------------------------------------------------------
if (opts.profile) {
  // The profiles are written when the sidecars exit normally (SIGTERM drains, then exits 0).
  await Promise.all([stop(weft.client, 10_000), stop(weft.server, 10_000)]);
  for (const f of readdirSync(weft.profDir).sort()) printTop(join(weft.profDir, f), 25);
  log(`profiles kept in ${weft.profDir} (open them in Chrome DevTools > Performance)`);
}
await stopAll();
if (opts.keep || opts.profile) log(`logs kept in ${dir}`);
else rmSync(dir, { recursive: true, force: true });
void nginx;
process.exit(0);
