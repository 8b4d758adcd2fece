/**
 * Kubelet probes rewritten to the sidecar (`/app-health/<container>/<kind>` on 15021): the health
 * server runs the app's original HTTP, TCP and gRPC probes against real servers on loopback.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { silentLogger } from '@weft/api';
import { HealthServer } from '../src/admin';
import { parseAppProbes, type AppProbes } from '../src/app-probe';
import { sidecarOptionsFromEnv } from '../src/sidecar';
import { send, startUpstream } from './fixtures';

const APP = '127.0.43.31';

function probes(json: object): AppProbes {
  const r = parseAppProbes(JSON.stringify(json));
  assert.ok('probes' in r, JSON.stringify(r));
  return r.probes;
}

/** A gRPC health server answering HealthCheckResponse{status} by service name. */
async function grpcHealth(statuses: Record<string, number>): Promise<{ port: number; close(): void }> {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const msg = Buffer.concat(chunks).subarray(5);
      const service = msg[0] === 0x0a ? msg.subarray(2, 2 + msg[1]!).toString() : '';
      const status = statuses[service];
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': status === undefined ? '5' : '0' }));
      if (status !== undefined) stream.write(Buffer.from([0, 0, 0, 0, 2, 0x08, status]));
      stream.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, APP, r));
  return { port: (server.address() as AddressInfo).port, close: () => server.close() };
}

test('the health port runs the app\'s HTTP, TCP and gRPC probes: 200 when the app is healthy, 503 with the reason when not', async (t) => {
  const app = await startUpstream('app', (req, res) => {
    if (req.url === '/hang') return; // never answers
    res.writeHead(req.url === '/live' && req.headers['x-probe'] === 'yes' ? 200 : req.url === '/moved' ? 302 : 500);
    res.end();
  }, APP);
  const closed = net.createServer();
  await new Promise<void>((r) => closed.listen(0, APP, r));
  const closedPort = (closed.address() as AddressInfo).port;
  closed.close(); // a port nothing listens on
  const grpc = await grpcHealth({ '': 1, web: 1, sick: 2 });
  t.after(() => {
    void app.close();
    grpc.close();
  });
  const health = new HealthServer({
    address: '127.0.0.1', port: 0, log: silentLogger, ready: () => true, appAddress: APP,
    appProbes: probes({
      '/app-health/web/livez': { httpGet: { path: '/live', port: app.port, httpHeaders: [{ name: 'x-probe', value: 'yes' }] } },
      '/app-health/web/readyz': { httpGet: { path: '/broken', port: app.port } },
      '/app-health/web/startupz': { httpGet: { path: '/moved', port: app.port } },
      '/app-health/slow/livez': { httpGet: { path: '/hang', port: app.port }, timeoutSeconds: 0.2 },
      '/app-health/db/livez': { tcpSocket: { port: app.port } },
      '/app-health/db/readyz': { tcpSocket: { port: closedPort } },
      '/app-health/grpc/livez': { grpc: { port: grpc.port } },
      '/app-health/grpc/readyz': { grpc: { port: grpc.port, service: 'sick' } },
      '/app-health/grpc/startupz': { grpc: { port: grpc.port, service: 'missing' } },
    }),
  });
  await health.listen();
  t.after(() => health.destroy());
  const port = health.address()!.port;
  const table: [string, number, RegExp][] = [
    ['/app-health/web/livez', 200, /HTTP 200/],
    ['/app-health/web/readyz', 503, /HTTP 500/],
    ['/app-health/web/startupz', 200, /HTTP 302/], // the kubelet counts 200-399 as success
    ['/app-health/slow/livez', 503, /timed out after 200 ms/],
    ['/app-health/db/livez', 200, /connected/],
    ['/app-health/db/readyz', 503, /connect ECONNREFUSED/],
    ['/app-health/grpc/livez', 200, /SERVING/],
    ['/app-health/grpc/readyz', 503, /NOT_SERVING/],
    ['/app-health/grpc/startupz', 503, /grpc-status 5/],
    ['/app-health/other/livez', 404, /not found/],
    ['/healthz/ready', 200, /ready/],
  ];
  for (const [path, status, body] of table) {
    const r = await send(port, { path });
    assert.equal(r.status, status, path);
    assert.match(r.body, body, path);
  }
  assert.equal((await send(port, { path: '/app-health/web/livez', method: 'POST' })).status, 405);
});

test('WEFT_APP_PROBES is validated at startup: a bad value is one clear line, the sidecar does not start', () => {
  const base = { WEFT_XDS_ADDRESS: '127.0.0.1:15010', POD_NAME: 'p', POD_NAMESPACE: 'shop', POD_IP: APP };
  const table: [string, RegExp][] = [
    ['{', /WEFT_APP_PROBES is not JSON/],
    ['[]', /must be a JSON object/],
    ['{"/healthz/x": {"tcpSocket": {"port": 1}}}', /the path must be \/app-health\/<container>\/livez, readyz or startupz/],
    ['{"/app-health/web/livez": {"httpGet": {"port": "http"}}}', /httpGet.port: must be a port number \(named ports are resolved by the injector\)/],
    ['{"/app-health/web/livez": {"tcpSocket": {"port": 1}, "grpc": {"port": 2}}}', /exactly one of httpGet, tcpSocket or grpc/],
    ['{"/app-health/web/livez": {"httpGet": {"port": 80, "scheme": "FTP"}}}', /scheme: must be HTTP or HTTPS/],
  ];
  for (const [value, want] of table) {
    const r = sidecarOptionsFromEnv({ ...base, WEFT_APP_PROBES: value });
    assert.equal(r.options, undefined, value);
    assert.match(r.errors.join('\n'), want, value);
  }
  const ok = sidecarOptionsFromEnv({ ...base, WEFT_APP_PROBES: '{"/app-health/web/readyz": {"httpGet": {"path": "/r", "port": 8080}}}' });
  assert.equal(ok.options?.appProbes?.get('/app-health/web/readyz')?.kind, 'http');
});
