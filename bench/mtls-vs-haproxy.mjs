// `npm run bench` (second part): the mTLS variants of bench/sidecar-vs-haproxy.mjs, same rows and
// targets. HTTP/1.1 keep-alive and gRPC unary through
//   (a) client -> nginx directly,
//   (b) client -> Weft sidecar pair (local mode, mesh mTLS between the sidecars, STRICT) -> nginx,
//   (c) client -> haproxy pair with mutual TLS between them (`bind ... ssl crt ... ca-file ...
//       verify required`, `server ... ssl crt ... ca-file ... verify required`) -> nginx.
// Certificates: the Weft sidecars get theirs from the control plane's CA (ECDSA P-256, over 15012);
// the haproxy pair uses an EC P-256 root and SPIFFE leaves made by the openssl CLI (the test fixtures).
// Addresses:
// 127.31.x.x only. Flags as the plaintext bench (--seconds, --rate, --connections, --no-grpc,
// --no-http, --json FILE, --keep); skip the whole thing with WEFT_BENCH_MTLS=0 (or --no-mtls).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measureRows, pairVariants } from './lib/measure-rows.mjs';
import { ensurePackages } from './lib/packages.mjs';
import { httpStatus, installCleanup, onBail, start, stopAll, waitFor } from './lib/procs.mjs';
import { startHaproxyPair } from './lib/proxy-haproxy.mjs';
import { grpcAuthority, NAMESPACE, SERVICE_HOST, startWeftPair } from './lib/proxy-weft.mjs';
import { checkTargets, printTable } from './lib/report.mjs';
import { idleRss } from './lib/rss.mjs';
import { startNginx } from './lib/upstream-nginx.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const IP = { cp: '127.31.0.1', client: '127.31.0.11', server: '127.31.0.21', ha1: '127.31.1.11', ha2: '127.31.1.21' };
const APP_PORT = 8080;
const GRPC_PORT = 9090;

const argv = process.argv.slice(2);
if (process.env.WEFT_BENCH_MTLS === '0' || argv.includes('--no-mtls')) {
  console.log('bench: mTLS variants skipped (WEFT_BENCH_MTLS=0 or --no-mtls)');
  process.exit(0);
}
const opts = { seconds: 10, rate: 1000, connections: 32, grpc: true, http: true, keep: false, json: undefined };
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--seconds' || a === '--rate' || a === '--connections') opts[a.slice(2)] = Number(argv[++i]);
  else if (a === '--no-grpc') opts.grpc = false;
  else if (a === '--no-http') opts.http = false;
  else if (a === '--keep') opts.keep = true;
  else if (a === '--json') opts.json = argv[++i];
  else if (a !== '--profile') {
    console.error(`bench: unknown flag ${a} (see the comment at the top of bench/mtls-vs-haproxy.mjs)`);
    process.exit(2);
  }
}
installCleanup((60 + (opts.http ? 3 : 0) * (2 * opts.seconds + 6) + (opts.grpc ? 3 : 0) * (2 * opts.seconds + 6)) * 1000 + 60_000);
ensurePackages();

const dir = mkdtempSync(join(tmpdir(), 'weft-bench-mtls-'));
onBail(() => (opts.keep ? console.error(`bench: logs kept in ${dir}`) : rmSync(dir, { recursive: true, force: true })));
const log = (m) => console.log(`bench mtls: ${m}`);
log(`temp dir ${dir}; ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}); node ${process.version}`);

// --- certificates ---------------------------------------------------------------------------
const { makeCa } = createRequire(import.meta.url)(join(ROOT, 'sidecar/dist/test/tls-fixtures.js'));
const ca = makeCa('weft-bench-root');
const leaves = { ha1: ca.leaf(NAMESPACE, 'haproxy-1'), ha2: ca.leaf(NAMESPACE, 'haproxy-2') };
const haPem = (l, name) => {
  const p = join(dir, `${name}.pem`);
  writeFileSync(p, l.chainPem + l.keyPem);
  return p;
};
const tls = (pem) => `ssl crt ${pem} ca-file ${ca.caPath} verify required`;

// --- start everything -----------------------------------------------------------------------
await startNginx(dir, IP.server, APP_PORT);
if (opts.grpc) {
  const g = start('grpc server', process.execPath, [join(ROOT, 'bench/lib/grpc-server.mjs'), `${IP.server}:${GRPC_PORT}`], { logPath: join(dir, 'grpc-server.log'), pdeathsig: false, stdinPipe: true });
  await waitFor(g, async () => /listening/.test(readFileSync(join(dir, 'grpc-server.log'), 'utf8')), 'listening');
}
// haproxy-1 takes plaintext from the client (as a sidecar takes its app's) and originates mTLS;
// haproxy-2 terminates it (client certificate required) and sends plaintext to the upstream.
const ha1 = haPem(leaves.ha1, 'haproxy-1');
const ha2 = haPem(leaves.ha2, 'haproxy-2');
await startHaproxyPair(dir, [
  { listen: `${IP.ha1}:8000`, next: `${IP.ha2}:8443`, grpc: opts.grpc && { listen: `${IP.ha1}:9000`, next: `${IP.ha2}:9443` }, tls: { server: tls(ha1) } },
  { listen: `${IP.ha2}:8443`, next: `${IP.server}:${APP_PORT}`, grpc: opts.grpc && { listen: `${IP.ha2}:9443`, next: `${IP.server}:${GRPC_PORT}` }, tls: { bind: tls(ha2) } },
]);
// The Weft pair gets its certificates the product's way: the control plane's CA over 15012.
const weft = await startWeftPair(dir, { root: ROOT, cpIp: IP.cp, clientIp: IP.client, serverIp: IP.server, appPort: APP_PORT, grpcPort: GRPC_PORT, identity: true, checkRoute: true });
// STRICT for the server: every request of row (b) must have crossed mTLS (plaintext is refused).
writeFileSync(join(dir, 'manifests', 'peer.yaml'), `apiVersion: weft.dev/v1alpha1
kind: PeerAuthentication
metadata: {name: server, namespace: ${NAMESPACE}}
spec:
  selector: {matchLabels: {app: server}}
  mtls: {mode: STRICT}
`);
await waitFor(weft.server, async () => {
  const dump = JSON.parse(await (await fetch(`http://${IP.server}:15000/config_dump`)).text());
  return (dump.config.listeners.virtualInbound?.connections?.chains ?? []).some((c) => c.match.transportProtocol === 'weft-mtls');
}, 'STRICT inbound chains');
const plain = await httpStatus(`http://${IP.server}:15006/`, { 'x-weft-target-port': String(APP_PORT) }).catch(() => 0);
if (plain === 200) throw new Error('the server sidecar answered plaintext under STRICT: row (b) would not measure mTLS');
log(`up: haproxy ${IP.ha1}:8000 -(mTLS)-> ${IP.ha2}:8443, weft ${IP.client}:15001 -(mTLS)-> ${IP.server}:15006 (STRICT; plaintext refused)`);
const idle = await idleRss([weft.server.child.pid]);
const [rssIdle] = idle.settled;
log(`sidecar RSS idle (settled, 20 s): server ${rssIdle.toFixed(1)} MB; 2 s after ready: ${idle.startup[0].toFixed(1)} MB`);

const variantOpts = { ip: IP, appPort: APP_PORT, grpcPort: GRPC_PORT, host: SERVICE_HOST, authority: grpcAuthority(GRPC_PORT), label: ', mTLS' };

// --- the rows (the same sequence as the plaintext bench) -------------------------------------
let http = {};
let rssLoad = NaN;
if (opts.http) {
  ({ rows: http, rss: rssLoad } = await measureRows('http', pairVariants('http', variantOpts), { opts, weftPid: weft.server.child.pid, log }));
}
let grpc = {};
let rssLoadGrpc = NaN;
if (opts.grpc) {
  const upstream = `http://${IP.server}:${GRPC_PORT}`;
  ({ rows: grpc, rss: rssLoadGrpc } = await measureRows('grpc', pairVariants('grpc', variantOpts), { opts, weftPid: weft.server.child.pid, log, dir, upstream, path: '/bench.Bench/Unary' }));
}

// --- report -----------------------------------------------------------------------------------
if (opts.http) printTable(`mTLS, HTTP/1.1 keep-alive: closed loop wrk -t1 -c${opts.connections}; latency open loop at ${opts.rate} req/s`, [http.direct, http.weft, http.haproxy]);
if (opts.grpc) printTable(`mTLS, gRPC unary: closed loop h2load -c4 -m8; latency open loop at ${opts.rate} req/s`, [grpc.direct, grpc.weft, grpc.haproxy]);
console.log(`\nserver-side sidecar RSS (mTLS): idle ${rssIdle.toFixed(1)} MB, peak under HTTP/1.1 load ${rssLoad.toFixed(1)} MB, under gRPC load ${rssLoadGrpc.toFixed(1)} MB`);
const checks = {
  ...(opts.http ? { http: checkTargets('mTLS HTTP/1.1', { ...http, rssIdle, rssLoad }) } : {}),
  ...(opts.grpc ? { grpc: checkTargets('mTLS gRPC unary', { ...grpc, rssLoad: rssLoadGrpc }) } : {}),
};
if (opts.json) writeFileSync(opts.json, JSON.stringify({ opts, http, grpc, rssIdle, rssLoad, rssLoadGrpc, checks }, null, 2));
await stopAll();
if (opts.keep) log(`logs kept in ${dir}`);
else rmSync(dir, { recursive: true, force: true });
process.exit(0);
