/**
 * Raw TCP through a sidecar pair in local mode (issue 3, item 1; FIELD-NOTES 5): a client app
 * connects to its own sidecar's per-upstream port `POD_IP:<service port>`; the client sidecar
 * TCP-proxies to the server pod's sidecar (inbound 15006) with a PROXY v2 header naming the app
 * port; that sidecar hands the bytes to the app. An opaque port skips detection (the banner of a
 * server-speaks-first protocol shows at once); an undeclared port detects (HTTP is routed, TLS and
 * silence fall back to TCP after the detection timeout).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import type { ControlPlane } from '@weft/control-plane';
import type { Sidecar } from '@weft/sidecar';
import { controlPlane, eventually, getJson, podYaml, sidecar, sleep, tempDir, writeManifest } from './mesh';

const CP = '127.10.40.1';
const CLIENT = { name: 'client', ip: '127.10.40.11', labels: { app: 'client' } };
const MAIL = { name: 'mail', ip: '127.10.40.21', labels: { app: 'mail' } };
const CLIENT_NODE = `sidecar~${CLIENT.ip}~client.shop~shop.svc.cluster.local`;
const BANNER = '220 smtp.example ESMTP\r\n';
/** The control plane's detection timeout (docs/protocols.md). */
const DETECTION_MS = 1000;
const PORTS = { smtp: 2525, plain: 2600, tls: 8443, api: 3000 };

let dir: string;
let cp: ControlPlane;
const sidecars: Sidecar[] = [];
const servers: net.Server[] = [];
/** What the TLS app's certificate looks like, to show the client saw the app's, not a sidecar's. */
let appFingerprint = '';

function mailService(ports: Record<string, number>): string {
  return `apiVersion: v1
kind: Service
metadata: {name: mail, namespace: shop}
spec:
  selector: {app: mail}
  ports:
${Object.entries(ports).map(([name, port]) => `  - {name: ${name}, port: ${port}, targetPort: ${port}}`).join('\n')}
`;
}

/** A server-speaks-first app: a banner on accept, then an echo; on the client's FIN, "bye" and its own FIN. */
function bannerApp(port: number): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.write(BANNER);
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end('bye\r\n'));
    s.on('error', () => undefined);
  });
  return new Promise((r) => server.listen(port, MAIL.ip, () => r(server)));
}

/** Reads from `s` until `until(text)` holds; resolves with the text and when it got there. */
function readUntil(s: net.Socket | tls.TLSSocket, until: (text: string) => boolean, timeoutMs = 5000): Promise<{ text: string; at: number }> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`timed out; got ${JSON.stringify(text)}`)), timeoutMs);
    const onData = (d: Buffer): void => {
      text += d.toString('latin1');
      if (until(text)) {
        clearTimeout(timer);
        s.off('data', onData);
        resolve({ text, at: performance.now() });
      }
    };
    s.on('data', onData);
    s.once('close', () => reject(new Error(`closed; got ${JSON.stringify(text)}`)));
  });
}

function connect(port: number, host = CLIENT.ip): Promise<{ socket: net.Socket; started: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, allowHalfOpen: true }, () => resolve({ socket, started }));
    socket.once('error', reject);
  });
}

before(async () => {
  dir = tempDir('tcp');
  writeManifest(dir, 'pods.yaml', [podYaml('shop', CLIENT), podYaml('shop', MAIL)].join('---\n'));
  // `smtp`: opaque by its name; `plain`, `web`, `api`: undeclared, so detected.
  writeManifest(dir, 'mail.yaml', mailService({ smtp: PORTS.smtp, plain: PORTS.plain, web: PORTS.tls, api: PORTS.api }));
  servers.push(await bannerApp(PORTS.smtp), await bannerApp(PORTS.plain));
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=mail.shop.svc.cluster.local'], { stdio: 'ignore' });
  const cert = fs.readFileSync(certFile);
  appFingerprint = new crypto.X509Certificate(cert).fingerprint256;
  const tlsApp = tls.createServer({ key: fs.readFileSync(keyFile), cert }, (s) => s.end('secret from the app\n'));
  servers.push(await new Promise<net.Server>((r) => tlsApp.listen(PORTS.tls, MAIL.ip, () => r(tlsApp))));
  const api = http.createServer((req, res) => res.end(`api saw ${req.headers.host}`));
  servers.push(await new Promise<net.Server>((r) => api.listen(PORTS.api, MAIL.ip, () => r(api))));
  // A newer Service that wants the same opaque port: the older one (mail) keeps it.
  writeManifest(dir, 'relay.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: relay, namespace: shop}\nspec:\n  selector: {app: relay}\n  ports: [{name: tcp-relay, port: 2525}]\n');
  cp = await controlPlane(dir, CP);
  sidecars.push(await sidecar(CP, 'shop', MAIL), await sidecar(CP, 'shop', CLIENT));
  // Through the pair: the client sidecar's endpoints for mail are its sidecar's inbound listener.
  await eventually('mail to be reached through its sidecar', async () => {
    const dump = await getJson(`http://${CP}:15014/debug/config_dump?node=${encodeURIComponent(CLIENT_NODE)}`);
    const cla = dump['type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment'].find((c: any) => c.cluster_name === `outbound|${PORTS.smtp}||mail.shop.svc.cluster.local`);
    return cla?.endpoints[0]?.lb_endpoints[0]?.endpoint.address.socket_address.port_value === 15006;
  }, 10_000);
  await eventually('the per-upstream port', async () => {
    const { socket } = await connect(PORTS.smtp);
    socket.destroy();
    return true;
  }, 10_000);
});

after(async () => {
  for (const s of sidecars) await s.close();
  await cp?.close();
  for (const s of servers) await new Promise((r) => s.close(r));
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('an opaque port: the banner of a server-speaks-first app arrives in under 100 ms, echo works both ways, and a half-close lets the server finish', async () => {
  const { socket, started } = await connect(PORTS.smtp);
  const banner = await readUntil(socket, (t) => t.includes('\r\n'));
  const ms = banner.at - started;
  assert.equal(banner.text, BANNER);
  assert.ok(ms < 100, `banner after ${ms.toFixed(1)} ms`);
  socket.write('EHLO client\r\n');
  assert.equal((await readUntil(socket, (t) => t.includes('\r\n'))).text, 'EHLO client\r\n');
  // Half-close: the client ends its side; the server still sends its last bytes, then closes.
  const ended = new Promise<void>((r) => socket.once('end', r));
  const last = readUntil(socket, (t) => t.includes('bye'));
  socket.end();
  assert.equal((await last).text, 'bye\r\n');
  await ended;
  socket.destroy();
});

test('weft proxy-config lists the per-upstream TCP listeners beside the HTTP ones', async () => {
  // Asynchronously: the control plane and sidecars answering it run in this process.
  const main = path.resolve(__dirname, '../../../cli/dist/src/main.js');
  const { stdout: out } = await promisify(execFile)(process.execPath, [main, 'proxy-config', 'client', 'listeners', '-n', 'shop', `--control-plane=${CP}:15014`], { encoding: 'utf8' });
  assert.match(out, /^NAME\s+ADDRESS\s+DIRECTION\s+ROUTES \/ TCP/);
  assert.match(out, new RegExp(`virtualOutbound\\s+${CLIENT.ip.replace(/\./g, '\\.')}:15001\\s+outbound\\s+RDS outbound`));
  assert.match(out, new RegExp(`0\\.0\\.0\\.0_${PORTS.smtp}\\s+${CLIENT.ip.replace(/\./g, '\\.')}:${PORTS.smtp}\\s+outbound\\s+tcp outbound\\|${PORTS.smtp}\\|\\|mail\\.shop\\.svc\\.cluster\\.local`));
});

test('an undeclared port: a silent client gets the banner after the detection timeout, then echo works', async () => {
  const { socket, started } = await connect(PORTS.plain);
  const banner = await readUntil(socket, (t) => t.includes('\r\n'));
  const ms = banner.at - started;
  assert.equal(banner.text, BANNER);
  assert.ok(ms >= DETECTION_MS - 50 && ms < DETECTION_MS + 1000, `banner after ${ms.toFixed(0)} ms, expected about ${DETECTION_MS}`);
  socket.write('ping\r\n');
  assert.equal((await readUntil(socket, (t) => t.includes('\r\n'))).text, 'ping\r\n');
  socket.destroy();
});

test('TLS passes through an undeclared port: the handshake is with the app, the sidecars never terminate it', async () => {
  const started = performance.now();
  const socket = tls.connect({ host: CLIENT.ip, port: PORTS.tls, servername: 'mail.shop.svc.cluster.local', rejectUnauthorized: false });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  // A ClientHello is decided on its first bytes: no detection wait.
  assert.ok(performance.now() - started < DETECTION_MS, 'TLS did not wait for the detection timeout');
  assert.equal(socket.getPeerX509Certificate()?.fingerprint256, appFingerprint);
  const got = await readUntil(socket, (t) => t.endsWith('\n'));
  assert.equal(got.text, 'secret from the app\n');
  socket.destroy();
});

test('HTTP on an undeclared per-upstream port is still detected and routed by Host', async () => {
  const body = await new Promise<string>((resolve, reject) => {
    http.get({ host: CLIENT.ip, port: PORTS.api, path: '/', headers: { host: `mail.shop.svc.cluster.local:${PORTS.api}` } }, (res) => {
      let b = '';
      res.on('data', (d) => (b += d));
      res.on('end', () => resolve(`${res.statusCode} ${b}`));
    }).on('error', reject);
  });
  // The server app saw the request through both sidecars (the Host is kept).
  assert.equal(body, `200 api saw mail.shop.svc.cluster.local:${PORTS.api}`);
});

test('a PROXY v2 header to the inbound listener reaches only the pod\'s app ports', async () => {
  const header = (port: number): Buffer => {
    const b = Buffer.alloc(28);
    Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c]).copy(b);
    Buffer.from([127, 10, 40, 11, 127, 10, 40, 21]).copy(b, 16);
    b.writeUInt16BE(40000, 24);
    b.writeUInt16BE(port, 26);
    return b;
  };
  // An app port: delivered (and the header stripped: the app's echo does not include it).
  const ok = await connect(15006, MAIL.ip);
  ok.socket.write(header(PORTS.smtp));
  assert.equal((await readUntil(ok.socket, (t) => t.includes('\r\n'))).text, BANNER);
  ok.socket.destroy();
  // Any other port (here the sidecar's own admin port): refused, closed without a byte.
  for (const port of [22, 15000]) {
    const bad = await connect(15006, MAIL.ip);
    let got = '';
    bad.socket.on('data', (d) => (got += d));
    bad.socket.on('error', () => undefined);
    bad.socket.write(header(port));
    await new Promise((r) => bad.socket.once('end', r));
    bad.socket.destroy();
    assert.equal(got, '', `port ${port}`);
  }
});

test('two Services wanting one opaque local port: the older keeps it and the conflict is in /debug/diagnostics', async () => {
  const diagnostics = await getJson(`http://${CP}:15014/debug/diagnostics`);
  const line = diagnostics.find((d: any) => d.file === 'Service shop/relay');
  assert.ok(line, JSON.stringify(diagnostics));
  assert.match(line.reason, /port 2525 .*older Service shop\/mail/);
});

test('removing an opaque port drains its listener: new connections are refused, the open one works until it ends', async () => {
  const { socket } = await connect(PORTS.smtp);
  assert.equal((await readUntil(socket, (t) => t.includes('\r\n'))).text, BANNER);
  // Without the relay Service too, which would otherwise inherit the port.
  fs.rmSync(path.join(dir, 'relay.yaml'));
  writeManifest(dir, 'mail.yaml', mailService({ plain: PORTS.plain, web: PORTS.tls, api: PORTS.api }));
  await eventually('the per-upstream port to close', async () => {
    try {
      const c = await connect(PORTS.smtp);
      c.socket.destroy();
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
    }
  }, 5000);
  await sleep(100);
  socket.write('still here\r\n');
  assert.equal((await readUntil(socket, (t) => t.includes('\r\n'))).text, 'still here\r\n');
  const last = readUntil(socket, (t) => t.includes('bye'));
  socket.end();
  assert.equal((await last).text, 'bye\r\n');
  socket.destroy();
});
