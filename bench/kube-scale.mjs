#!/usr/bin/env node
// Kubernetes-mode scale benchmark (issue 8: a sidecar's memory does not grow with cluster size).
// A test cluster (e2e/cluster, real etcd + kube-apiserver + kube-controller-manager) gets 100
// namespaces scale-00..99 and N Services spread over them (one port each, a selector matching
// nothing). The control plane runs in kube mode as a child process (`weft control-plane
// --kubeconfig`), and two `weft sidecar` children connect: A in scale-00 (scoped: only its own
// namespace) and B in scale-01, whose Namespace is annotated `weft.dev/reach=*` (every Service).
//
//   1. with --scoped-at M Services (default 1000): A's and B's clusters and settled RSS;
//   2. the other N - M Services are created: A (still scoped) and B (everything) again;
//   3. scale-00 is annotated `weft.dev/reach=*`: how long until A holds all N, and its RSS then.
//
// Flags: --services N (default 10000), --scoped-at M (default 1000, at most N), --concurrency C
// (Service creates in flight, default 32), --keep (keep the temp dir with the logs). `npm run
// bench -- --no-scale` skips this benchmark and `--scale-only` runs only it; --services and the
// --scale-* flags reach only this one. With no built test cluster it prints why and exits 0.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installCleanup, httpStatus, onBail, start, stopAll, tail, waitFor } from './lib/procs.mjs';
import { idleRss } from './lib/rss.mjs';
import { sidecarNodeFlags } from './lib/proxy-weft.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'control-plane', 'package.json'));
const NAMESPACES = 100;
const CP_IP = '127.0.53.1';
const XDS = `${CP_IP}:15010`;
const DEBUG = `${CP_IP}:15014`;
const REACH = 'weft.dev/reach';
const nsName = (i) => `scale-${String(i).padStart(2, '0')}`;
const svcName = (i) => `svc-${String(i).padStart(5, '0')}`;

function parseArgs(argv) {
  const o = { services: 10000, scopedAt: 1000, concurrency: 32, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error(`${a} needs a positive integer, got ${argv[i]}`);
      return v;
    };
    if (a === '--services') o.services = num();
    else if (a === '--scoped-at' || a === '--scale-scoped-at') o.scopedAt = num();
    else if (a === '--concurrency' || a === '--scale-concurrency') o.concurrency = num();
    else if (a === '--keep' || a === '--scale-keep') o.keep = true;
    else throw new Error(`unknown flag ${a} (see the comment at the top of bench/kube-scale.mjs)`);
  }
  o.scopedAt = Math.min(o.scopedAt, o.services);
  return o;
}

const opts = parseArgs(process.argv.slice(2));
const { startKubeCluster, installCrds } = require(join(root, 'e2e/dist/test/kube-cluster.js'));
const { KubeClient } = require('@weft/control-plane');

installCleanup(30 * 60_000);
const dir = mkdtempSync(join(tmpdir(), 'weft-bench-scale-'));
let cluster;
let client;
onBail(() => {
  client?.close();
  // The fixture's exit hook runs `cluster.mjs down` for a cluster still open.
  if (!opts.keep) rmSync(dir, { recursive: true, force: true });
});

const getJson = (url) => new Promise((resolve, reject) => {
  const req = get(url, { timeout: 30_000, agent: false }, (res) => {
    let body = '';
    res.setEncoding('utf8').on('data', (c) => (body += c));
    res.on('end', () => {
      try {
        resolve(JSON.parse(body));
      } catch (e) {
        reject(e);
      }
    });
  });
  req.once('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
  req.once('error', reject);
});

/** The sidecar's Service clusters (`outbound|80||svc-…`), from its admin config dump. */
async function serviceClusters(ip) {
  try {
    const dump = await getJson(`http://${ip}:15000/config_dump`);
    return Object.keys(dump.config?.clusters ?? {}).filter((n) => n.includes('|svc-')).length;
  } catch {
    return -1;
  }
}

/** Runs `fn(i)` for i in [from, to) with at most `limit` in flight. */
async function pool(from, to, limit, fn) {
  let next = from;
  const worker = async () => {
    while (next < to) await fn(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, to - from) }, worker));
}

async function createServices(from, to) {
  const t0 = Date.now();
  await pool(from, to, opts.concurrency, (i) => client.request('POST', `/api/v1/namespaces/${nsName(i % NAMESPACES)}/services`, {
    body: { apiVersion: 'v1', kind: 'Service', metadata: { name: svcName(i) }, spec: { selector: { app: `none-${i}` }, ports: [{ name: 'http', port: 80, targetPort: 8080 }] } },
  }));
  return Date.now() - t0;
}

/** How many of the first `n` Services live in namespace index `k`. */
const inNamespace = (n, k) => Math.floor(n / NAMESPACES) + (k < n % NAMESPACES ? 1 : 0);

/** Polls the sidecar until it holds `want` Service clusters; resolves ms since `since`. */
async function untilClusters(p, ip, want, since, timeoutMs = 10 * 60_000) {
  await waitFor(p, async () => (await serviceClusters(ip)) >= want, `holding ${want} Service clusters`, timeoutMs);
  return Date.now() - since;
}

async function annotate(ns, value) {
  const t0 = Date.now();
  await client.request('PATCH', `/api/v1/namespaces/${ns}`, { body: { metadata: { annotations: { [REACH]: value } } }, contentType: 'application/merge-patch+json' });
  return t0;
}

const f = (v, d = 1) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(d));

async function main() {
  const up0 = Date.now();
  const c = await startKubeCluster();
  if (typeof c === 'string') {
    console.log(`kube-scale: skipped: ${c}`);
    return;
  }
  cluster = c;
  console.log(`test cluster ${cluster.version} up in ${((Date.now() - up0) / 1000).toFixed(1)} s (${cluster.dir})`);
  await installCrds(cluster);
  client = await KubeClient.load({ kubeconfig: cluster.kubeconfig });
  for (const ns of ['weft-system', ...Array.from({ length: NAMESPACES }, (_, i) => nsName(i))]) {
    await client.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } } });
  }
  const M = opts.scopedAt;
  const N = opts.services;
  const createM = await createServices(0, M);
  console.log(`created ${M} Services in ${NAMESPACES} namespaces in ${(createM / 1000).toFixed(1)} s (${opts.concurrency} in flight)`);

  const main = join(root, 'cli/dist/src/main.js');
  const quiet = { WEFT_LOG_LEVEL: 'warn' };
  const cp0 = Date.now();
  const cp = start('weft control-plane', process.execPath,
    [main, 'control-plane', '--kubeconfig', cluster.kubeconfig, '--no-ca', '--no-leader-elect', '--namespace', 'weft-system',
      '--xds-address', XDS, '--debug-address', DEBUG, '--exit-with-parent'],
    { env: quiet, logPath: join(dir, 'control-plane.log'), pdeathsig: false, stdinPipe: true });
  await waitFor(cp, async () => (await httpStatus(`http://${DEBUG}/ready`)) === 200, 'ready', 120_000);
  const cpReadyMs = Date.now() - cp0;
  console.log(`control plane ready in ${(cpReadyMs / 1000).toFixed(1)} s with ${M} Services`);

  const nodeFlags = sidecarNodeFlags(root);
  const sidecar = (pod, ns, ip) => start(`sidecar ${ns}/${pod}`, process.execPath, [...nodeFlags, main, 'sidecar', '--exit-with-parent'], {
    // info: the log says why an xDS stream broke (xds-client state changes), a few lines per run.
    env: { WEFT_LOG_LEVEL: 'info', WEFT_XDS_ADDRESS: XDS, POD_NAME: pod, POD_NAMESPACE: ns, POD_IP: ip, SERVICE_ACCOUNT: 'default' },
    logPath: join(dir, `sidecar-${ns}.log`), pdeathsig: false, stdinPipe: true,
  });
  const A = { p: sidecar('a', nsName(0), '127.0.53.10'), ip: '127.0.53.10' };
  const B = { p: sidecar('b', nsName(1), '127.0.53.11'), ip: '127.0.53.11' };
  for (const s of [A, B]) await waitFor(s.p, async () => (await httpStatus(`http://${s.ip}:15021/healthz/ready`)) === 200, 'ready', 120_000);
  await untilClusters(A.p, A.ip, inNamespace(M, 0), Date.now());

  const rows = [];
  const measure = async (points) => {
    const { settled } = await idleRss([A.p.child.pid, B.p.child.pid, cp.child.pid]);
    const cpRss = settled[2];
    for (const pt of points) {
      const row = { ...pt, sent: await serviceClusters(pt.s.ip), rss: settled[pt.s === A ? 0 : 1], cpRss };
      rows.push(row);
      console.log(`  ${row.services} Services, sidecar ${row.s === A ? 'A' : 'B'} (${row.scope}): holds ${row.sent}, settled RSS ${f(row.rss)} MB; control plane ${f(cpRss)} MB`);
    }
  };

  // --- M Services: A scoped, B annotated `*` ---
  const pushB1 = await untilClusters(B.p, B.ip, M, await annotate(nsName(1), '*'));
  console.log(`scale-01 ${REACH}=*: sidecar B held all ${M} Services after ${pushB1} ms`);
  await measure([{ services: M, scope: 'scale-00 only', s: A, push: undefined }, { services: M, scope: '* (all)', s: B, push: pushB1 }]);

  // --- N Services ---
  if (N > M) {
    const createRest = await createServices(M, N);
    const created = Date.now();
    console.log(`created ${N - M} more Services in ${(createRest / 1000).toFixed(1)} s`);
    const lagB = await untilClusters(B.p, B.ip, N, created);
    const lagA = await untilClusters(A.p, A.ip, inNamespace(N, 0), created);
    console.log(`after the last create: sidecar B held all ${N} after ${lagB} ms, sidecar A its ${inNamespace(N, 0)} after ${lagA} ms`);
    await measure([{ services: N, scope: 'scale-00 only', s: A, push: undefined }, { services: N, scope: '* (all)', s: B, push: undefined }]);
  }
  const pushA = await untilClusters(A.p, A.ip, N, await annotate(nsName(0), '*'));
  console.log(`scale-00 ${REACH}=*: sidecar A held all ${N} Services after ${pushA} ms`);
  await measure([{ services: N, scope: '* (all), re-scoped', s: A, push: pushA }]);

  const head = ['Services in cluster', 'sidecar', 'reach', 'Services sent', 'sidecar RSS settled MB', 'push to all ms', 'control-plane RSS MB'];
  const body = rows.map((r) => [String(r.services), r.s === A ? 'A (scale-00)' : 'B (scale-01)', r.scope, String(r.sent), f(r.rss), r.push === undefined ? '-' : String(r.push), f(r.cpRss)]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => cells.map((x, i) => (i < 3 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('  ');
  console.log(`\nKubernetes mode at scale (${N} Services in ${NAMESPACES} namespaces, node ${process.version}, sidecar flags ${nodeFlags.join(' ') || 'none'}; control plane ready in ${(cpReadyMs / 1000).toFixed(1)} s with ${M})`);
  console.log(line(head));
  console.log(w.map((n) => '-'.repeat(n)).join('  '));
  for (const b of body) console.log(line(b));
  const cpLog = tail(join(dir, 'control-plane.log'), 5);
  if (cpLog) console.log(`\ncontrol-plane log (last lines):\n${cpLog}`);
  writeFileSync(join(dir, 'result.json'), JSON.stringify({ services: N, scopedAt: M, cpReadyMs, createM, rows: rows.map(({ s, ...r }) => ({ ...r, sidecar: s === A ? 'A' : 'B' })) }, null, 2));
}

try {
  await main();
} finally {
  await stopAll();
  client?.close();
  await cluster?.close();
  if (opts.keep) console.log(`logs kept in ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
