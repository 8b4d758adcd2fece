/**
 * Transparent capture for real (issue 3, item 2): pods are Linux network namespaces on a bridge,
 * each with `weft capture-init` rules and a `weft sidecar` running as uid 1337 in capture mode.
 * An unmodified client calls a Service's cluster IP; the call crosses the client's sidecar
 * (outbound capture) and the server's sidecar (inbound capture, original destination port) to
 * the app. Needs root, `ip` and iptables; elsewhere it skips with the reason printed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, podYaml, tempDir, writeManifest } from './mesh';
import { createNetnsPods, inNs, NetnsProcesses, netnsSkipReason, sidecarsReady, teardown, WEFT } from './netns-pods';

const skip = netnsSkipReason();
if (skip) console.log(`# skipping capture mesh test: ${skip}`);

const id = process.pid % 10000;
const SW = `wsw-${id}`;
const PODS = {
  client: { ns: `wcl-${id}`, ip: '10.250.20.11', veth: `wc${id}` },
  server: { ns: `wsv-${id}`, ip: '10.250.20.21', veth: `ws${id}` },
};
const CP_IP = '10.250.20.1';
const SERVICE_IP = '10.250.30.5';
const procs = new NetnsProcesses();
const startIn = procs.start.bind(procs);
let dir: string;

before(async () => {
  if (skip) return;
  createNetnsPods(SW, CP_IP, Object.values(PODS));
  dir = tempDir('capture');
  writeManifest(dir, 'mesh.yaml', [
    podYaml('shop', { name: 'client', ip: PODS.client.ip, labels: { app: 'client' } }),
    podYaml('shop', { name: 'server', ip: PODS.server.ip, labels: { app: 'server' } }),
    `apiVersion: v1\nkind: Service\nmetadata: {name: server, namespace: shop}\nspec:\n  clusterIP: ${SERVICE_IP}\n  selector: {app: server}\n  ports: [{name: http, port: 80, targetPort: 8080}, {name: admin, port: 81, targetPort: 9090}, {name: smtp, port: 2525, targetPort: 2525}]\n`,
  ].join('---\n'));
  startIn(SW, [WEFT, 'control-plane', '--manifests', dir, '--data-dir', `${dir}-data`, '--xds-address', `${CP_IP}:15010`, '--debug-address', `${CP_IP}:15014`], {});
  // The app: echoes who connected to it and the headers it got.
  startIn(PODS.server.ns, ['-e', `for (const port of [8080, 9090]) require('http').createServer((q, s) => s.end(JSON.stringify({ port, peer: q.socket.remoteAddress, headers: q.headers }))).listen(port, '${PODS.server.ip}')`], {});
  // A server-speaks-first app on an opaque port (Service port name smtp): a banner, then an echo.
  startIn(PODS.server.ns, ['-e', `require('net').createServer((s) => { s.write('220 server ESMTP\\r\\n'); s.pipe(s); }).listen(2525, '${PODS.server.ip}')`], {});
  for (const [name, p] of Object.entries(PODS)) {
    startIn(p.ns, [WEFT, 'sidecar'], { WEFT_XDS_ADDRESS: `${CP_IP}:15010`, POD_NAME: name, POD_NAMESPACE: 'shop', POD_IP: p.ip, WEFT_CAPTURE: 'true' }, 1337);
  }
  await sidecarsReady(Object.values(PODS), eventually);
});

after(() => teardown(procs, [PODS.client.ns, PODS.server.ns, SW], dir));

test('an unmodified client calling a Service IP goes through both sidecars to the app', { skip }, () => {
  const out = inNs(PODS.client.ns, 'curl', '-sS', '--max-time', '5', `http://${SERVICE_IP}/hello`);
  const seen = JSON.parse(out) as { peer: string; headers: Record<string, string> };
  // The client's sidecar handled it (it adds x-request-id and x-forwarded-for)...
  assert.ok(seen.headers['x-request-id'], out);
  assert.match(seen.headers['x-forwarded-for'] ?? '', new RegExp(PODS.client.ip.replace(/\./g, '\\.')));
  // ...and the server's sidecar delivered it: the app's peer is its own pod, not the client pod.
  assert.equal(seen.peer, PODS.server.ip);
  assert.equal(seen.headers['x-weft-target-port'], undefined);
});

test('the server\'s sidecar delivers each call to the app port it was addressed to (its original destination)', { skip }, () => {
  const call = (url: string): number => JSON.parse(inNs(PODS.client.ns, 'curl', '-sS', '--max-time', '5', url)).port;
  assert.equal(call(`http://${SERVICE_IP}/`), 8080);
  assert.equal(call(`http://${SERVICE_IP}:81/`), 9090);
  // A client's own x-weft-target-port is never what decides.
  assert.equal(JSON.parse(inNs(PODS.client.ns, 'curl', '-sS', '--max-time', '5', '-H', 'x-weft-target-port: 9090', `http://${SERVICE_IP}/`)).port, 8080);
});

test('the sidecar\'s own uid is not captured, and its admin port is pod-local', { skip }, () => {
  const direct = inNs(PODS.client.ns, 'setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', 'curl', '-sS', '--max-time', '5', `http://${PODS.server.ip}:8080/`);
  // Straight to the server pod (its inbound capture still sends it through its sidecar).
  assert.equal(JSON.parse(direct).peer, PODS.server.ip);
  assert.match(inNs(PODS.client.ns, 'curl', '-s', 'http://127.0.0.1:15000/ready'), /LIVE/);
  // From another pod (as uid 1337, so that pod's own outbound capture does not answer instead).
  assert.throws(() => inNs(PODS.server.ns, 'setpriv', '--reuid=1337', '--regid=1337', '--clear-groups', 'curl', '-sS', '--max-time', '2', `http://${PODS.client.ip}:15000/ready`), /Couldn't connect/);
});

/** Runs in the client pod: connects to `host:port`, sends `send` once the banner is in, reports what came back. */
function tcpProbe(host: string, port: number, send: string): { bannerMs: number; text: string } {
  const script = `const net = require('net'); const t0 = performance.now(); let text = '', bannerMs = -1;
    const s = net.connect(${port}, '${host}');
    s.on('data', (d) => { text += d.toString('latin1'); if (bannerMs < 0) { bannerMs = performance.now() - t0; s.write(Buffer.from(${JSON.stringify(send)}, 'base64')); } });
    setTimeout(() => { console.log(JSON.stringify({ bannerMs, text })); process.exit(0); }, 1500);`;
  return JSON.parse(inNs(PODS.client.ns, process.execPath, '-e', script)) as { bannerMs: number; text: string };
}

test('an opaque Service port in capture mode: the banner arrives in under 100 ms through both sidecars, and echo works', { skip }, () => {
  const r = tcpProbe(SERVICE_IP, 2525, Buffer.from('EHLO client\r\n').toString('base64'));
  assert.ok(r.bannerMs >= 0 && r.bannerMs < 100, `banner after ${r.bannerMs} ms`);
  assert.equal(r.text, '220 server ESMTP\r\nEHLO client\r\n');
});

test('capture mode never trusts a client\'s PROXY header: it reaches the app as plain bytes, on the port the client dialled', { skip }, () => {
  // A PROXY v2 header naming app port 9090: in capture mode only the original destination (2525) counts.
  const header = Buffer.concat([Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c]), Buffer.from([10, 250, 20, 11, 10, 250, 20, 21, 0x9c, 0x40, 0x23, 0x82])]);
  const r = tcpProbe(SERVICE_IP, 2525, header.toString('base64'));
  assert.equal(r.text, `220 server ESMTP\r\n${header.toString('latin1')}`);
});
