#!/usr/bin/env node
// Certificate issuance benchmark (issue 4: >= 500 per second sustained). The control plane runs
// in a child process with its CA on a TLS port; this process keeps --ca-clients concurrent
// CreateCertificate calls in flight over real TLS (grpc-js, 8 channels), each with a real
// local-mode token and CSR, for --ca-seconds (default 12; the first 2 s are warm-up). Every call
// goes through the whole path: TLS, token signature/audience/expiry, CSR parse and signature
// check, identity match, rate limiter, signing.
//
// The tokens are for 50 service accounts, and the per-identity rate limit is raised for the run
// (the default, 100 then 10/s per identity, would measure the limiter instead of signing).
//
// Flags (others are for the other benchmarks and ignored here): --ca-seconds N, --ca-clients N
// (default 64), --ca-json FILE. `npm run bench -- --no-ca` skips this benchmark; `--ca-only`
// runs only it.
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'control-plane', 'package.json'));
const SERVICE_ACCOUNTS = 50;

function parseArgs(argv) {
  const o = { seconds: 12, clients: 64, json: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--ca-seconds') o.seconds = Number(argv[++i]);
    else if (a === '--ca-clients') o.clients = Number(argv[++i]);
    else if (a === '--ca-json') o.json = argv[++i];
    else if (a.startsWith('--ca-')) throw new Error(`unknown flag ${a} (see the comment at the top of bench/ca-issuance.mjs)`);
  }
  if (!(o.seconds >= 3) || !(o.clients >= 1)) throw new Error('--ca-seconds must be >= 3 and --ca-clients >= 1');
  return o;
}

// The child: a control plane with identity, in this same file (argv[2] === 'serve').
if (process.argv[2] === 'serve') {
  const { startControlPlane } = require('@weft/control-plane');
  const { silentLogger } = require('@weft/api');
  const [, , , manifests, dataDir] = process.argv;
  const cp = await startControlPlane({
    manifestsDir: manifests, xdsAddress: '127.0.0.1:0', debugAddress: '127.0.0.1:0', log: silentLogger,
    identity: { dataDir, caAddress: '127.0.0.1:0', rateLimit: { burst: 1e9, perSecond: 1e9 } },
  });
  process.send({ caPort: cp.caPort, debugPort: cp.debugPort, rootPem: cp.ca.rootPem() });
  process.on('message', async () => {
    await cp.close();
    process.exit(0);
  });
} else {
  await main(parseArgs(process.argv.slice(2)));
}

async function main(opts) {
  const grpc = require('@grpc/grpc-js');
  const protoLoader = require('@grpc/proto-loader');
  const { buildCsr, generateWorkloadKey } = require('@weft/api');
  const manifests = mkdtempSync(join(tmpdir(), 'weft-bench-ca-m-'));
  const dataDir = mkdtempSync(join(tmpdir(), 'weft-bench-ca-d-'));
  let yaml = '';
  for (let i = 0; i < SERVICE_ACCOUNTS; i++) {
    yaml += `apiVersion: v1\nkind: Pod\nmetadata: {name: p${i}, namespace: bench}\nspec: {serviceAccountName: sa${i}, containers: [{name: a, image: a}]}\nstatus: {podIP: 127.0.41.${100 + (i % 100)}}\n---\n`;
  }
  writeFileSync(join(manifests, 'pods.yaml'), yaml);
  const child = fork(fileURLToPath(import.meta.url), ['serve', manifests, dataDir], { stdio: 'inherit' });
  const info = await new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (c) => reject(new Error(`the control plane exited (${c}) before serving`)));
  });
  const identities = Array.from({ length: SERVICE_ACCOUNTS }, (_, i) => ({
    token: readFileSync(join(dataDir, 'tokens', 'bench', `sa${i}`, 'token'), 'utf8'),
    csr: buildCsr(generateWorkloadKey().privateKey, `spiffe://cluster.local/ns/bench/sa/sa${i}`),
  }));
  const def = protoLoader.loadSync(join(root, 'api/proto/weft/ca/v1/ca.proto'), { keepCase: true, longs: Number, defaults: true });
  const Service = grpc.loadPackageDefinition(def).weft.ca.v1.CertificateService;
  const creds = grpc.credentials.createSsl(Buffer.from(info.rootPem));
  const channels = Array.from({ length: 8 }, (_, i) => new Service(`127.0.0.1:${info.caPort}`, creds, { 'grpc.use_local_subchannel_pool': 1, 'weft.channel': i, 'grpc.ssl_target_name_override': 'localhost' }));

  let ok = 0;
  let failed = 0;
  let counting = false;
  const latencies = [];
  const start = Date.now();
  const warmupEnd = start + 2000;
  const end = start + opts.seconds * 1000;
  let firstError;
  async function client(n) {
    let k = n;
    while (Date.now() < end) {
      const id = identities[k++ % identities.length];
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${id.token}`);
      const t0 = process.hrtime.bigint();
      const err = await new Promise((resolve) => channels[n % channels.length].CreateCertificate({ csr: id.csr }, md, (e) => resolve(e)));
      if (!counting && Date.now() >= warmupEnd) counting = true;
      if (!counting) continue;
      if (err) {
        failed++;
        firstError ??= err.details ?? err.message;
      } else {
        ok++;
        latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }
  }
  await Promise.all(Array.from({ length: opts.clients }, (_, i) => client(i)));
  const seconds = (Date.now() - warmupEnd) / 1000;
  for (const c of channels) c.close();
  child.send('stop');
  await new Promise((r) => child.once('exit', r));
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]?.toFixed(1);
  const rate = ok / seconds;
  const result = { issuedPerSecond: Math.round(rate), issued: ok, failed, seconds: Math.round(seconds * 10) / 10, clients: opts.clients, p50ms: Number(q(0.5)), p99ms: Number(q(0.99)), cores: cpus().length };
  console.log(`CA issuance over TLS (${opts.clients} concurrent clients, ${SERVICE_ACCOUNTS} identities, ${result.seconds} s measured, ${result.cores} cores):`);
  console.log(`  ${result.issuedPerSecond} certificates/s sustained (${ok} issued, ${failed} failed${firstError ? `: ${firstError}` : ''}); latency p50 ${result.p50ms} ms, p99 ${result.p99ms} ms`);
  console.log(`  target >= 500/s: ${rate >= 500 ? 'met' : 'NOT met'}`);
  if (opts.json) writeFileSync(opts.json, JSON.stringify(result, null, 2));
  process.exit(failed === 0 && rate >= 500 ? 0 : 1);
}
