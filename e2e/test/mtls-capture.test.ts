/**
 * Mesh mTLS in capture mode (pods as network namespaces, iptables capture, sidecars as uid 1337
 * with static SPIFFE identities): an unmodified client's calls to a Service IP cross both sidecars
 * over mTLS and reach the app port they were addressed to (the original destination survives TLS
 * termination); a STRICT port refuses a client without a sidecar while a PERMISSIVE one answers it;
 * an app's own TLS passes through a PERMISSIVE port untouched; `tshark` on the bridge between the
 * pods sees only TLS. Needs root, `ip`, iptables (and tshark for the last test); else skipped with
 * the reason printed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeCa, type TestCa } from '@weft/sidecar/dist/test/tls-fixtures';
import { eventually, podYaml, sleep, tempDir, writeManifest } from './mesh';
import { createNetnsPods, inNs, NetnsProcesses, netnsSkipReason, sidecarsReady, teardown, WEFT } from './netns-pods';

const run = promisify(execFile);
const skip = netnsSkipReason();
if (skip) console.log(`# skipping capture mTLS test: ${skip}`);
/** A Weft sidecar with a static identity from files (the mTLS benchmark's launcher). */
const MTLS_SIDECAR = path.resolve(__dirname, '../../../bench/lib/mtls-sidecar.mjs');

const id = process.pid % 10000;
const SW = `msw-${id}`;
const PODS = {
  client: { ns: `mcl-${id}`, ip: '10.250.42.11', veth: `mc${id}` },
  server: { ns: `msv-${id}`, ip: '10.250.42.21', veth: `ms${id}` },
};
const CP_IP = '10.250.42.1';
const SERVICE_IP = '10.250.43.5';
const procs = new NetnsProcesses();
let dir: string;
let ca: TestCa;

/** Runs `args` in the client pod as uid 1337: not captured, so it reaches the server pod without a sidecar. */
const bypass = (...args: string[]): string => inNs(PODS.client.ns, 'setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', ...args);

before(async () => {
  if (skip) return;
  createNetnsPods(SW, CP_IP, Object.values(PODS));
  dir = tempDir('mtls-capture');
  ca = makeCa();
  const appCa = makeCa('app-root');
  const appCert = appCa.leaf('shop', 'app');
  writeManifest(dir, 'mesh.yaml', [
    podYaml('shop', { name: 'client', ip: PODS.client.ip, labels: { app: 'client' }, serviceAccount: 'client' }),
    podYaml('shop', { name: 'server', ip: PODS.server.ip, labels: { app: 'server' }, serviceAccount: 'server' }),
    `apiVersion: v1\nkind: Service\nmetadata: {name: server, namespace: shop}\nspec:\n  clusterIP: ${SERVICE_IP}\n  selector: {app: server}\n  ports: [{name: http, port: 80, targetPort: 8080}, {name: admin, port: 81, targetPort: 9090}, {name: web, port: 8443, targetPort: 8443}]\n`,
    // STRICT mesh-wide, from the root namespace the control plane is told (--root-namespace);
    // the server's workload policy opens 9090 and 8443 to plaintext.
    `apiVersion: weft.dev/v1alpha1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: mesh-root}\nspec:\n  mtls: {mode: STRICT}\n`,
    `apiVersion: weft.dev/v1alpha1\nkind: PeerAuthentication\nmetadata: {name: server, namespace: shop}\nspec:\n  selector: {matchLabels: {app: server}}\n  portLevelMtls: {"9090": {mode: PERMISSIVE}, "8443": {mode: PERMISSIVE}}\n`,
  ].join('---\n'));
  procs.start(SW, [WEFT, 'control-plane', '--manifests', dir, '--xds-address', `${CP_IP}:15010`, '--debug-address', `${CP_IP}:15014`, '--root-namespace', 'mesh-root',
    // The sidecars carry static identities from the test CA: no control-plane CA, whose ROOTCA would replace that trust bundle.
    '--no-ca'], {});
  procs.start(PODS.server.ns, ['-e', `for (const port of [8080, 9090]) require('http').createServer((q, s) => s.end(JSON.stringify({ port, peer: q.socket.remoteAddress, headers: q.headers }))).listen(port, '${PODS.server.ip}')`], {});
  // The app's own TLS, with a certificate from its own CA.
  procs.start(PODS.server.ns, ['-e', `require('https').createServer({ key: ${JSON.stringify(appCert.keyPem)}, cert: ${JSON.stringify(appCert.chainPem)} }, (q, s) => s.end('app-tls')).listen(8443, '${PODS.server.ip}')`], {});
  // uid 1337 reads the identities.
  fs.chmodSync(ca.dir, 0o755);
  for (const [name, p] of Object.entries(PODS)) {
    const leaf = ca.leaf('shop', name);
    fs.chmodSync(leaf.keyPath, 0o644);
    procs.start(p.ns, [MTLS_SIDECAR], {
      WEFT_XDS_ADDRESS: `${CP_IP}:15010`, POD_NAME: name, POD_NAMESPACE: 'shop', POD_IP: p.ip, SERVICE_ACCOUNT: name, WEFT_CAPTURE: 'true',
      WEFT_BENCH_CERT: leaf.certPath, WEFT_BENCH_KEY: leaf.keyPath, WEFT_BENCH_CA: ca.caPath,
    }, 1337);
  }
  await sidecarsReady(Object.values(PODS), eventually);
  // Auto mTLS needs the server's endpoint marked (its sidecar connected with an identity).
  await eventually('the client to see the server endpoint with tlsMode', () => {
    try {
      return /"tlsMode":\s*"weft"/.test(inNs(PODS.client.ns, 'curl', '-s', 'http://127.0.0.1:15000/config_dump'));
    } catch {
      return false;
    }
  }, 15_000);
});

after(() => teardown(procs, [PODS.client.ns, PODS.server.ns, SW], dir));

test('an unmodified client reaches each app port through both sidecars over mTLS (the original destination survives termination)', { skip }, () => {
  const call = (url: string): { port: number; peer: string; headers: Record<string, string> } => JSON.parse(inNs(PODS.client.ns, 'curl', '-sS', '--max-time', '5', url));
  const strict = call(`http://${SERVICE_IP}/`);
  assert.equal(strict.port, 8080);
  assert.ok(strict.headers['x-request-id']);
  assert.equal(strict.peer, PODS.server.ip);
  assert.equal(call(`http://${SERVICE_IP}:81/`).port, 9090);
});

test('STRICT refuses a client without a sidecar; PERMISSIVE answers it', { skip }, () => {
  assert.throws(() => bypass('curl', '-sS', '--max-time', '3', `http://${PODS.server.ip}:8080/`), /Empty reply|reset|Recv failure/);
  assert.equal(JSON.parse(bypass('curl', '-sS', '--max-time', '3', `http://${PODS.server.ip}:9090/`)).port, 9090);
  const metrics = inNs(PODS.server.ns, 'curl', '-s', `http://${PODS.server.ip}:15020/metrics`);
  assert.match(metrics, /weft_inbound_tls_refusals_total\{reason="plaintext"\} [1-9]/);
});

test('an app\'s own TLS passes through a PERMISSIVE port: the handshake is with the app\'s certificate', { skip }, () => {
  const script = `const s = require('tls').connect({ host: '${PODS.server.ip}', port: 8443, rejectUnauthorized: false }, () => { console.log(s.getPeerCertificate().issuer.O); s.destroy(); });`;
  assert.equal(bypass(process.execPath, '-e', script).trim(), 'app-root');
  assert.equal(bypass('curl', '-sSk', '--max-time', '3', `https://${PODS.server.ip}:8443/`), 'app-tls');
});

test('tshark on the bridge between the pods sees only TLS', { skip }, async (t) => {
  try {
    execFileSync('tshark', ['--version'], { stdio: 'ignore' });
  } catch {
    console.log('# skipped: tshark is not installed');
    return t.skip('tshark is not installed');
  }
  const pcap = path.join(dir, 'bridge.pcap');
  const marker = `weft-secret-${Date.now()}`;
  const cap = spawn('ip', ['netns', 'exec', SW, 'tshark', '-i', 'br0', '-f', `tcp and host ${PODS.server.ip} and not port 15010`, '-w', pcap, '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  cap.stderr.on('data', (d) => (err += d));
  await eventually('tshark to start capturing', () => /Capture started|Capturing on/.test(err), 15_000);
  await sleep(1000);
  for (let i = 0; i < 5; i++) inNs(PODS.client.ns, 'curl', '-sS', '--max-time', '5', '-H', `x-marker: ${marker}`, `http://${SERVICE_IP}/${marker}`);
  await sleep(1000);
  cap.kill('SIGINT');
  await new Promise((r) => cap.once('close', r));
  const read = async (filter: string): Promise<string[]> => (await run('tshark', ['-r', pcap, '-d', 'tcp.port==8080,tls', '-Y', filter])).stdout.split('\n').filter(Boolean);
  assert.ok((await read('tls.app_data')).length >= 5, err);
  assert.deepEqual(await read('http || http2'), []);
  // A retransmitted segment repeats bytes already seen (tshark does not dissect it again as TLS).
  assert.deepEqual(await read('tcp.len > 0 && !tls && !tcp.analysis.retransmission && !tcp.analysis.fast_retransmission && !tcp.analysis.spurious_retransmission'), []);
  assert.equal(fs.readFileSync(pcap).includes(Buffer.from(marker)), false);
});
