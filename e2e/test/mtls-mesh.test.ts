/**
 * Mesh mTLS end to end (issue 4, items 4 and "Show it"): a real control plane and two sidecars in
 * local mode with static SPIFFE identities (certificates made by the `openssl` CLI), and tools we
 * did not write: `openssl s_client` shows the served chain and SPIFFE URI SAN and is refused with a
 * certificate from another CA; `curl` in plaintext is refused by a STRICT port; HTTP/1.1, gRPC
 * (h2) and TCP travel over mTLS between the sidecars; PERMISSIVE → STRICT and certificate rotation
 * under constant load lose no request, and open connections survive rotation.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { spawn, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as http from 'node:http';
import * as https from 'node:https';
import * as tls from 'node:tls';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { ControlPlane } from '@weft/control-plane';
import { startSidecar, type Sidecar } from '@weft/sidecar';
import { makeCa, StaticIdentity, type TestCa } from '@weft/sidecar/dist/test/tls-fixtures';
import {
  closeServer, controlPlane, echoService, eventually, getJson, grpcApp, httpApp, log, MeshClient, podYaml, serviceYaml, sleep, steadyTraffic, tempDir, writeManifest,
} from './mesh';

const run = promisify(execFile);
const CP = '127.0.42.1';
const FRONT = { name: 'frontend', ip: '127.0.42.11', labels: { app: 'frontend' }, serviceAccount: 'frontend' };
const BACK = { name: 'backend', ip: '127.0.42.21', labels: { app: 'backend' }, serviceAccount: 'backend' };
const HOST = 'backend.shop.svc.cluster.local';
const PORTS = { http: 8080, grpc: 9090, tcp: 7000, appTls: 8443 };

let dir: string;
let cp: ControlPlane;
let ca: TestCa;
let frontId: StaticIdentity;
let backId: StaticIdentity;
const sidecars: Sidecar[] = [];
let app: http.Server & { hits: number };
let grpcServer: grpc.Server;
let echo: net.Server;
let appTls: https.Server;
let appCa: TestCa;
let client: MeshClient;

function peerAuthYaml(mode: string, name = 'backend', extra = ''): string {
  return `apiVersion: weft.dev/v1alpha1
kind: PeerAuthentication
metadata: {name: ${name}, namespace: shop}
spec:
  selector: {matchLabels: {app: backend}}
  mtls: {mode: ${mode}}
${extra}`;
}

async function startPod(pod: typeof FRONT, identity: StaticIdentity): Promise<Sidecar> {
  const s = await startSidecar({
    xdsAddress: `${CP}:15010`, podName: pod.name, namespace: 'shop', podIp: pod.ip, serviceAccount: pod.serviceAccount, trustDomain: 'cluster.local',
    drainTimeoutMs: 1000, identityProvider: identity, trustBundles: ca.trust(), log: log.child({ c: `sidecar ${pod.name}` }),
  });
  await s.ready;
  return s;
}

async function metric(ip: string, name: string): Promise<string> {
  return new Promise((resolve, reject) => http.get(`http://${ip}:15020/metrics`, (res) => {
    let body = '';
    res.on('data', (c) => (body += c));
    res.on('end', () => resolve(body.split('\n').filter((l) => l.startsWith(name)).join('\n')));
  }).on('error', reject));
}

/** The inbound listener of the backend's sidecar as its config dump shows it. */
async function inboundChains(): Promise<string[]> {
  const dump = await getJson(`http://${BACK.ip}:15000/config_dump`);
  return (dump.config.listeners.virtualInbound?.connections?.chains ?? []).map((c: { name: string; match: { transportProtocol?: string } }) => `${c.name}:${c.match.transportProtocol ?? ''}`);
}

before(async () => {
  ca = makeCa();
  frontId = new StaticIdentity(ca.leaf('shop', 'frontend'));
  backId = new StaticIdentity(ca.leaf('shop', 'backend'));
  dir = tempDir('mtls');
  writeManifest(dir, 'mesh.yaml', [
    podYaml('shop', FRONT), podYaml('shop', BACK),
    serviceYaml('shop', 'backend', { app: 'backend' }, [
      { name: 'http', port: 80, targetPort: PORTS.http },
      { name: 'grpc', port: PORTS.grpc, targetPort: PORTS.grpc },
      { name: 'tcp-echo', port: PORTS.tcp, targetPort: PORTS.tcp },
      { name: 'web', port: PORTS.appTls, targetPort: PORTS.appTls },
    ]),
  ].join('---\n'));
  writeManifest(dir, 'peer.yaml', peerAuthYaml('PERMISSIVE'));
  cp = await controlPlane(dir, CP);
  app = await httpApp(BACK.ip, PORTS.http, 'backend');
  // An Upgrade (WebSocket-like) app: 101, then an echo.
  app.on('upgrade', (_req, socket: net.Socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n');
    socket.pipe(socket);
  });
  grpcServer = await grpcApp(BACK.ip, PORTS.grpc, 'backend-grpc');
  echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(PORTS.tcp, BACK.ip, () => r()));
  // An app with its own TLS (its own CA): the mesh must carry it untouched.
  appCa = makeCa('app-root');
  const appLeaf = appCa.leaf('shop', 'app');
  appTls = https.createServer({ key: appLeaf.keyPem, cert: appLeaf.chainPem }, (_q, r) => r.end('app-tls'));
  await new Promise<void>((r) => appTls.listen(PORTS.appTls, BACK.ip, () => r()));
  sidecars.push(await startPod(BACK, backId), await startPod(FRONT, frontId));
  client = new MeshClient(FRONT.ip);
  // Auto mTLS: the frontend's cluster for the backend has the mTLS transport once the backend's sidecar is known.
  await eventually('the frontend to see the backend with tlsMode', async () => {
    const dump = await getJson(`http://${FRONT.ip}:15000/config_dump`);
    const eps = dump.config.endpoints[`outbound|80||${HOST}`] ?? [];
    return eps.some((e: { transportMatch?: { tlsMode?: string } }) => e.transportMatch?.tlsMode === 'weft');
  }, 10_000);
});

after(async () => {
  client?.close();
  await Promise.all(sidecars.map((s) => s.close()));
  await closeServer(app);
  grpcServer?.forceShutdown();
  echo?.close();
  appTls?.closeAllConnections();
  appTls?.close();
  await cp?.close();
});

test('HTTP/1.1 between the sidecars goes over mTLS: STRICT refuses plaintext curl, the mesh request still answers', async () => {
  writeManifest(dir, 'peer.yaml', peerAuthYaml('STRICT'));
  await eventually('the STRICT chains', async () => (await inboundChains()).includes('http:weft-mtls'), 10_000);
  const r = await client.get(HOST);
  assert.deepEqual(r, { status: 200, body: 'backend' });
  // curl, plaintext, straight at the backend's inbound listener as a peer would send it: closed.
  const plain = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-H', `x-weft-target-port: ${PORTS.http}`, `http://${BACK.ip}:15006/`]).then(
    (o) => ({ code: 0, out: o.stdout }), (e: { code: number; stderr: string }) => ({ code: e.code, out: e.stderr }));
  assert.notEqual(plain.code, 0, `curl should fail, got ${JSON.stringify(plain)}`);
  assert.match(plain.out, /Empty reply|reset|Recv failure/i);
  assert.match(await metric(BACK.ip, 'weft_inbound_tls_refusals_total'), /reason="plaintext"} [1-9]/);
});

test('an Upgrade tunnel (WebSocket-like) crosses the sidecars over mTLS under STRICT', async () => {
  writeManifest(dir, 'peer.yaml', peerAuthYaml('STRICT'));
  await eventually('the STRICT chains', async () => (await inboundChains()).includes('http:weft-mtls'), 10_000);
  const s = net.connect(15001, FRONT.ip);
  s.write(`GET /ws HTTP/1.1\r\nhost: ${HOST}\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n`);
  let text = '';
  const wait = (re: RegExp): Promise<void> => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`got ${JSON.stringify(text)}`)), 5000);
    const check = (): void => {
      if (!re.test(text)) return;
      clearTimeout(timer);
      s.off('data', onData);
      resolve();
    };
    const onData = (d: Buffer): void => {
      text += d;
      check();
    };
    s.on('data', onData);
    check();
  });
  await wait(/^HTTP\/1\.1 101/);
  s.write('through the tunnel');
  await wait(/through the tunnel$/);
  s.destroy();
});

test('PERMISSIVE answers plaintext curl on the same port', async () => {
  writeManifest(dir, 'peer.yaml', peerAuthYaml('PERMISSIVE'));
  await eventually('the PERMISSIVE chains', async () => (await inboundChains()).includes('http:'), 10_000);
  const { stdout } = await run('curl', ['-sS', '-H', `x-weft-target-port: ${PORTS.http}`, `http://${BACK.ip}:15006/`]);
  assert.equal(stdout, 'backend');
  assert.deepEqual(await client.get(HOST), { status: 200, body: 'backend' });
});

test('an app\'s own TLS crosses the mesh untouched: inside mesh mTLS on PERMISSIVE, as plain TCP on DISABLE', async () => {
  const viaMesh = (): Promise<{ issuer: string; body: string }> => new Promise((resolve, reject) => {
    // The frontend's per-upstream port for the backend's `web` port (detected: TLS is TCP-proxied).
    const s = tls.connect({ host: FRONT.ip, port: PORTS.appTls, ca: appCa.caPem, checkServerIdentity: () => undefined }, () => {
      const issuer = String(s.getPeerCertificate().issuer.O);
      s.write('GET / HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n');
      let text = '';
      s.on('data', (d) => (text += d));
      s.on('end', () => resolve({ issuer, body: text.split('\r\n\r\n')[1] ?? '' }));
    });
    s.on('error', reject);
  });
  writeManifest(dir, 'peer.yaml', peerAuthYaml('PERMISSIVE'));
  await eventually('the PERMISSIVE chains', async () => (await inboundChains()).includes('http:'), 10_000);
  assert.deepEqual(await viaMesh(), { issuer: 'app-root', body: 'app-tls' });
  writeManifest(dir, 'peer.yaml', peerAuthYaml('DISABLE'));
  await eventually('the frontend to reach the DISABLE port in plaintext', async () => {
    const dump = await getJson(`http://${FRONT.ip}:15000/config_dump`);
    const eps = dump.config.endpoints[`outbound|${PORTS.appTls}||${HOST}`] ?? [];
    return eps.length > 0 && eps.every((e: { transportMatch?: unknown }) => e.transportMatch === undefined);
  }, 10_000);
  assert.deepEqual(await viaMesh(), { issuer: 'app-root', body: 'app-tls' });
});

test('openssl s_client sees the SPIFFE chain; no client certificate or one from another CA is refused', async () => {
  const other = makeCa('intruder-root');
  const stranger = other.leaf('shop', 'frontend');
  const mine = ca.leaf('shop', 'tool');
  const sclient = async (args: string[]): Promise<string> => {
    const child = execFile('openssl', ['s_client', '-connect', `${BACK.ip}:15006`, '-alpn', 'weft-mtls', '-showcerts', '-CAfile', ca.caPath, ...args], { timeout: 10_000 });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    // Say something after the handshake so a refusal (an alert after TLS 1.3's handshake) shows.
    setTimeout(() => child.stdin!.write(`GET / HTTP/1.1\r\nhost: x\r\nx-weft-target-port: ${PORTS.http}\r\nconnection: close\r\n\r\n`), 500);
    await new Promise((r) => child.on('close', r));
    return out;
  };
  writeManifest(dir, 'peer.yaml', peerAuthYaml('PERMISSIVE'));
  await eventually('the terminating chain', async () => (await inboundChains()).includes('mtls:tls'), 10_000);
  const ok = await sclient(['-cert', mine.certPath, '-key', mine.keyPath]);
  assert.match(ok, /Verify return code: 0 \(ok\)/, ok);
  assert.match(ok, /HTTP\/1\.1 200/);
  const leafPem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(ok)![0];
  const { X509Certificate } = await import('node:crypto');
  assert.equal(new X509Certificate(leafPem).subjectAltName, 'URI:spiffe://cluster.local/ns/shop/sa/backend');
  const before = await metric(BACK.ip, 'weft_inbound_tls_refusals_total');
  const bad = await sclient(['-cert', stranger.certPath, '-key', stranger.keyPath]);
  assert.doesNotMatch(bad, /HTTP\/1\.1 200/);
  assert.match(bad, /alert|error/i, bad);
  // TLS without the mesh ALPN (an app's TLS, or a tool) is not mesh mTLS: closed under STRICT.
  writeManifest(dir, 'peer.yaml', peerAuthYaml('STRICT'));
  await eventually('the STRICT chains', async () => (await inboundChains()).includes('http:weft-mtls'), 10_000);
  const noAlpn = await run('openssl', ['s_client', '-connect', `${BACK.ip}:15006`, '-CAfile', ca.caPath, '-cert', mine.certPath, '-key', mine.keyPath], { timeout: 10_000 }).then((o) => o.stdout + o.stderr, (e: { stdout: string; stderr: string }) => e.stdout + e.stderr);
  assert.doesNotMatch(noAlpn, /BEGIN CERTIFICATE/, 'no certificate is served to TLS without the mesh ALPN');
  await eventually('tls-not-mesh counted', async () => /reason="tls-not-mesh"} [1-9]/.test(await metric(BACK.ip, 'weft_inbound_tls_refusals_total')));
  writeManifest(dir, 'peer.yaml', peerAuthYaml('PERMISSIVE'));
  await eventually('the PERMISSIVE chains', async () => (await inboundChains()).includes('http:'), 10_000);
  const none = await sclient([]);
  assert.doesNotMatch(none, /HTTP\/1\.1 200/);
  assert.match(none, /alert|error/i, none);
  await eventually('both refusals counted', async () => {
    const now = await metric(BACK.ip, 'weft_inbound_tls_refusals_total');
    return now !== before && /bad-client-certificate/.test(now) && /no-client-certificate/.test(now);
  });
});

test('gRPC (h2) and TCP between the sidecars over mTLS under STRICT', async () => {
  writeManifest(dir, 'peer.yaml', peerAuthYaml('STRICT'));
  await eventually('the STRICT chains', async () => (await inboundChains()).includes('http:weft-mtls'), 10_000);
  const Client = grpc.makeGenericClientConstructor(echoService, 'Echo');
  const g = new Client(`${FRONT.ip}:15001`, grpc.credentials.createInsecure(), { 'grpc.default_authority': `${HOST}:${PORTS.grpc}` }) as grpc.Client & Record<string, any>;
  const reply = await new Promise<string>((resolve, reject) => g.Who!(Buffer.from('x'), { deadline: Date.now() + 5000 }, (e: Error | null, r: Buffer) => (e ? reject(e) : resolve(r.toString()))));
  assert.equal(reply, 'backend-grpc');
  g.close();
  // TCP: the frontend's per-upstream port for tcp-echo; the PROXY header travels inside TLS.
  const s = net.connect(PORTS.tcp, FRONT.ip);
  s.write('ping over mtls');
  const got = await new Promise<string>((resolve, reject) => {
    s.once('data', (d) => resolve(d.toString()));
    s.once('error', reject);
    setTimeout(() => reject(new Error('no echo')), 5000);
  });
  assert.equal(got, 'ping over mtls');
  s.destroy();
  // Half-close across mTLS: the client's FIN reaches the app (an echo that ends when its input
  // ends), which still answers everything before its own FIN comes back.
  const half = net.connect({ port: PORTS.tcp, host: FRONT.ip, allowHalfOpen: true });
  const echoed = await new Promise<string>((resolve, reject) => {
    let text = '';
    half.on('data', (d) => (text += d));
    half.on('end', () => resolve(text));
    half.on('error', reject);
    setTimeout(() => reject(new Error(`no FIN back; got ${JSON.stringify(text)}`)), 5000);
    half.end('last words');
  });
  assert.equal(echoed, 'last words');
  half.destroy();
});

test('PERMISSIVE → STRICT and back under constant load loses no request', async () => {
  writeManifest(dir, 'peer.yaml', peerAuthYaml('PERMISSIVE'));
  await eventually('the PERMISSIVE chains', async () => (await inboundChains()).includes('http:'), 10_000);
  const load = steadyTraffic(client, HOST, 2);
  await sleep(300);
  writeManifest(dir, 'peer.yaml', peerAuthYaml('STRICT'));
  await eventually('the STRICT chains', async () => (await inboundChains()).includes('http:weft-mtls'), 10_000);
  await sleep(300);
  writeManifest(dir, 'peer.yaml', peerAuthYaml('PERMISSIVE'));
  await eventually('the PERMISSIVE chains', async () => (await inboundChains()).includes('http:'), 10_000);
  await sleep(300);
  const { ok, failures } = await load.stop();
  assert.deepEqual(failures, []);
  assert.ok(ok > 50, `only ${ok} requests`);
});

test('certificate rotation under load loses no request and an open TCP connection survives', async () => {
  writeManifest(dir, 'peer.yaml', peerAuthYaml('STRICT'));
  await eventually('the STRICT chains', async () => (await inboundChains()).includes('http:weft-mtls'), 10_000);
  const s = net.connect(PORTS.tcp, FRONT.ip);
  const echoOnce = (text: string): Promise<string> => new Promise((resolve, reject) => {
    s.once('data', (d) => resolve(d.toString()));
    setTimeout(() => reject(new Error('no echo')), 5000);
    s.write(text);
  });
  assert.equal(await echoOnce('before'), 'before');
  const load = steadyTraffic(client, HOST, 2);
  await sleep(200);
  backId.set(ca.leaf('shop', 'backend'));
  await sleep(200);
  frontId.set(ca.leaf('shop', 'frontend'));
  await sleep(300);
  const { ok, failures } = await load.stop();
  assert.deepEqual(failures, []);
  assert.ok(ok > 30, `only ${ok} requests`);
  assert.equal(await echoOnce('after rotation'), 'after rotation');
  // New connections use the new certificate: a fresh handshake sees the rotated leaf's serial.
  s.destroy();
});

test('a server presenting another identity fails the connection (UPSTREAM_IDENTITY_MISMATCH), not served', async () => {
  const original = backId.current()!;
  backId.set(ca.leaf('shop', 'intruder'));
  try {
    // A new TCP connection needs a new handshake: the frontend refuses the backend's certificate.
    const s = net.connect(PORTS.tcp, FRONT.ip);
    s.write('hello?');
    const outcome = await new Promise<string>((resolve) => {
      s.once('data', (d) => resolve(`data ${d}`));
      s.once('close', () => resolve('closed'));
      s.once('error', () => undefined);
      setTimeout(() => resolve('timeout'), 5000);
    });
    assert.equal(outcome, 'closed');
    // The backend sees the client walk away mid-handshake at once (not after a timeout), and counts it.
    await eventually('the backend to count the abandoned handshake', async () => /reason="handshake-failed"} [1-9]/.test(await metric(BACK.ip, 'weft_inbound_tls_refusals_total')), 2000);
  } finally {
    backId.set(original);
  }
});

/** Why the tshark proof cannot run here (printed), or undefined. */
function tsharkUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'capturing on loopback needs root';
  try {
    execFileSync('tshark', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'tshark is not installed (apt-get install tshark)';
  }
  return undefined;
}

test('tshark between the two sidecars sees only TLS records: no HTTP, no plaintext header or body', async (t) => {
  const why = tsharkUnavailable();
  if (why) {
    console.log(`# skipped: ${why}`);
    return t.skip(why);
  }
  const pcap = path.join(dir, 'mesh.pcap');
  const marker = `weft-secret-${Date.now()}`;
  // Only the hop between the sidecars: the backend's inbound listener.
  const cap = spawn('tshark', ['-i', 'lo', '-f', `tcp port 15006 and host ${BACK.ip}`, '-w', pcap, '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  cap.stderr.on('data', (d) => (err += d));
  await eventually('tshark to start capturing', () => /Capture started|Capturing on/.test(err), 15_000);
  await sleep(1000); // dumpcap is live a little after it says so
  const fresh = new MeshClient(FRONT.ip);
  for (let i = 0; i < 20; i++) assert.equal((await fresh.get(HOST, `/${marker}/${i}`, { 'x-marker': marker })).status, 200);
  fresh.close();
  await sleep(1000);
  cap.kill('SIGINT');
  await new Promise((r) => cap.once('close', r));
  const read = async (filter: string): Promise<string[]> => (await run('tshark', ['-r', pcap, '-d', 'tcp.port==15006,tls', '-Y', filter])).stdout.split('\n').filter(Boolean);
  const tlsRecords = await read('tls.app_data');
  assert.ok(tlsRecords.length >= 20, `expected TLS application data, got ${tlsRecords.length}:\n${err}`);
  assert.deepEqual(await read('http || http2'), []);
  const bytes = fs.readFileSync(pcap);
  assert.equal(bytes.includes(Buffer.from(marker)), false, 'the request path or header appeared in clear on the wire');
  assert.equal(bytes.includes(Buffer.from('x-weft-target-port')), false);
  // Every segment that carries bytes is a TLS record (or the rest of one).
  // A retransmitted segment repeats bytes already seen (tshark does not dissect it again as TLS).
  assert.deepEqual(await read('tcp.len > 0 && !tls && !tcp.analysis.retransmission && !tcp.analysis.fast_retransmission && !tcp.analysis.spurious_retransmission'), []);
});
