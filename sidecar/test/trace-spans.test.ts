/**
 * Tracing end to end on real sockets (docs/tracing.md): sidecars export over OTLP/HTTP (protobuf)
 * to a receiver in the test, which decodes with the official OpenTelemetry definitions (the
 * generated protos of `@opentelemetry/otlp-transformer`). Two hops: client → frontend's outbound
 * → backend's inbound → backend app, which forwards `traceparent` through its own outbound →
 * db's inbound → db app.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { HttpListener } from '../src/config';
import { MetricsRegistry } from '../src/metrics';
import { configureTracing, TRACE_STATS } from '../src/trace-stats';
import { flushTracers, MAX_QUEUE_SIZE, shutdownTracers } from '../src/trace-tracer';
import type { TracingConfig } from '../src/trace-config';
import { retryPolicy } from './retry-fixtures';
import { grpcFrame, grpcHeaders, grpcReply, h2Send, startH2App } from './h2-fixtures';
import { cluster, closedPort, listener, proxyConfig, route, routeTable, send, sleep, startProxy, startUpstream, vhost, type TestProxy, type Upstream } from './fixtures';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const otlp = require('@opentelemetry/otlp-transformer/build/src/generated/root').opentelemetry.proto;
type Obj = Record<string, any>;

const BACKEND = 'backend.demo.svc.cluster.local';
const DB = 'db.demo.svc.cluster.local';
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

configureTracing({ local: { namespace: 'demo', podName: 'test-pod' } });
after(() => shutdownTracers(500));

interface DecodedSpan {
  readonly service: string;
  readonly name: string;
  readonly kind: number;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
  readonly attributes: Record<string, unknown>;
  readonly status: number;
}

/** An OTLP/HTTP receiver: every POST body decoded as `ExportTraceServiceRequest`. */
async function startReceiver(): Promise<{ url: string; spans: DecodedSpan[]; contentTypes: string[]; close(): Promise<void> }> {
  const spans: DecodedSpan[] = [];
  const contentTypes: string[] = [];
  const hex = (b: Uint8Array | undefined): string => Buffer.from(b ?? []).toString('hex');
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      contentTypes.push(String(req.headers['content-type']));
      const msg = otlp.collector.trace.v1.ExportTraceServiceRequest.decode(Buffer.concat(chunks));
      for (const rs of msg.resourceSpans) {
        const service = rs.resource.attributes.find((a: Obj) => a.key === 'service.name')?.value.stringValue;
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            const attributes: Record<string, unknown> = {};
            for (const a of s.attributes) attributes[a.key] = a.value.stringValue ?? (a.value.intValue !== undefined && a.value.intValue !== null ? Number(a.value.intValue) : a.value.boolValue ?? a.value.doubleValue);
            spans.push({ service, name: s.name, kind: s.kind, traceId: hex(s.traceId), spanId: hex(s.spanId), parentSpanId: hex(s.parentSpanId), attributes, status: s.status?.code ?? 0 });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/x-protobuf' });
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`,
    spans,
    contentTypes,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const tracing = (url: string, serviceName: string, samplingRatio = 1): TracingConfig => ({ endpoint: url, samplingRatio, serviceName, timeoutMs: 2000 });

/** A sidecar listener proxying everything to `target` through cluster `clusterName`. */
async function hop(spec: HttpListener, clusterName: string, target: { readonly port: number }): Promise<TestProxy> {
  const config = proxyConfig({
    routeTables: [routeTable('outbound', [vhost('all', ['*'], [route(spec.direction === 'outbound' ? 'to-service' : 'to-app', clusterName)])])],
    clusters: [cluster(clusterName)],
    endpoints: { [clusterName]: [{ address: '127.0.0.1', port: target.port, weight: 1, healthy: true }] },
  });
  return startProxy(config, spec);
}

interface Mesh {
  readonly frontendOut: TestProxy;
  readonly backendIn: TestProxy;
  /** What each app received, headers included. */
  readonly backendApp: Upstream;
  readonly dbApp: Upstream;
  close(): Promise<void>;
}

/**
 * frontendOut → backendIn → backendApp ──(forwards traceparent, tracestate, x-request-id)──→
 * backendOut → dbIn → dbApp.
 */
async function startMesh(url: string, sampling = 1): Promise<Mesh> {
  const dbApp = await startUpstream('db');
  const dbIn = await hop(listener('db-in', { direction: 'inbound', tracing: tracing(url, 'db', sampling) }), 'inbound|8080||', dbApp);
  const backendOut = await hop(listener('backend-out', { tracing: tracing(url, 'backend', sampling) }), `outbound|80||${DB}`, dbIn);
  const backendApp = await startUpstream('backend', (req, res) => {
    // The app's only tracing duty: forward the trace headers it received.
    const forward: http.OutgoingHttpHeaders = {};
    for (const h of ['traceparent', 'tracestate', 'x-request-id']) if (req.headers[h]) forward[h] = req.headers[h];
    send(backendOut.port, { host: DB, headers: forward }).then(
      (r) => {
        res.writeHead(r.status, { 'content-type': 'text/plain' });
        res.end(`backend<${r.body}>`);
      },
      () => {
        res.writeHead(502);
        res.end();
      },
    );
  });
  const backendIn = await hop(listener('backend-in', { direction: 'inbound', tracing: tracing(url, 'backend', sampling) }), 'inbound|8080||', backendApp);
  const frontendOut = await hop(listener('frontend-out', { tracing: tracing(url, 'frontend', sampling) }), `outbound|80||${BACKEND}`, backendIn);
  return {
    frontendOut,
    backendIn,
    backendApp,
    dbApp,
    close: async () => {
      for (const p of [frontendOut, backendIn, backendOut, dbIn]) await p.close();
      await backendApp.close();
      await dbApp.close();
    },
  };
}

/** Flushes the exporters and waits until `n` spans of `traceId` arrived. */
async function spansOf(receiver: { spans: DecodedSpan[] }, traceId: string | undefined, n: number): Promise<DecodedSpan[]> {
  for (let i = 0; i < 50; i++) {
    await flushTracers();
    const found = receiver.spans.filter((s) => traceId === undefined || s.traceId === traceId);
    if (found.length >= n) return found;
    await sleep(50);
  }
  return receiver.spans.filter((s) => traceId === undefined || s.traceId === traceId);
}

const SERVER = 2; // SPAN_KIND_SERVER
const CLIENT = 3; // SPAN_KIND_CLIENT

test('a request across two hops yields client and server spans linked parent to child, with HTTP and mesh attributes', async () => {
  const receiver = await startReceiver();
  const mesh = await startMesh(receiver.url);
  try {
    const r = await send(mesh.frontendOut.port, { host: BACKEND, path: '/items?id=7', headers: { 'user-agent': 'trace-test', 'x-request-id': 'req-1' } });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'backend<db>');
    const traceparent = String(mesh.backendApp.received[0]!.headers.traceparent);
    const traceId = traceparent.split('-')[1]!;
    const spans = await spansOf(receiver, traceId, 4);
    assert.equal(spans.length, 4, JSON.stringify(spans, null, 1));
    assert.ok(receiver.contentTypes.every((c) => c === 'application/x-protobuf'), `OTLP/HTTP protobuf, got ${receiver.contentTypes.join(', ')}`);

    const find = (service: string, kind: number): DecodedSpan => {
      const s = spans.find((x) => x.service === service && x.kind === kind);
      assert.ok(s, `no ${kind === CLIENT ? 'client' : 'server'} span of ${service}`);
      return s;
    };
    const frontendClient = find('frontend', CLIENT);
    const backendServer = find('backend', SERVER);
    const backendClient = find('backend', CLIENT);
    const dbServer = find('db', SERVER);
    // A new trace: the first span is a root; each next hop is the child of the previous one.
    assert.equal(frontendClient.parentSpanId, '');
    assert.equal(backendServer.parentSpanId, frontendClient.spanId);
    assert.equal(backendClient.parentSpanId, backendServer.spanId, 'the app forwarded traceparent: its outbound call is a child of its server span');
    assert.equal(dbServer.parentSpanId, backendClient.spanId);
    // What the app got as traceparent is the backend server span's context, sampled.
    assert.equal(traceparent, `00-${traceId}-${backendServer.spanId}-01`);

    assert.equal(frontendClient.name, `GET ${BACKEND}`);
    assert.deepEqual(
      {
        method: frontendClient.attributes['http.request.method'],
        path: frontendClient.attributes['url.path'],
        status: frontendClient.attributes['http.response.status_code'],
        version: frontendClient.attributes['network.protocol.version'],
        ua: frontendClient.attributes['user_agent.original'],
        requestId: frontendClient.attributes['weft.request_id'],
        route: frontendClient.attributes['weft.route.name'],
        sourceWorkload: frontendClient.attributes['weft.source.workload'],
        sourceNamespace: frontendClient.attributes['weft.source.namespace'],
        destService: frontendClient.attributes['weft.destination.service'],
        destNamespace: frontendClient.attributes['weft.destination.namespace'],
        retries: frontendClient.attributes['weft.retry.count'],
        upstream: frontendClient.attributes['weft.upstream.address'],
      },
      {
        method: 'GET', path: '/items', status: 200, version: '1.1', ua: 'trace-test', requestId: 'req-1', route: 'to-service',
        sourceWorkload: 'frontend', sourceNamespace: 'demo', destService: BACKEND, destNamespace: 'demo', retries: 0,
        upstream: `127.0.0.1:${mesh.backendIn.port}`,
      },
    );
    assert.equal(backendServer.attributes['weft.destination.workload'], 'backend');
    assert.equal(backendServer.attributes['weft.source.workload'], 'unknown', 'plaintext: no peer identity');
    assert.equal(backendServer.attributes['weft.route.name'], 'to-app');
    assert.equal(backendServer.attributes['weft.request_id'], 'req-1', 'x-request-id kept through the hop');
    assert.equal(dbServer.attributes['weft.request_id'], 'req-1');
    assert.equal(mesh.dbApp.received[0]!.headers['x-request-id'], 'req-1');
    for (const s of spans) assert.equal(s.status, 0, `${s.service} ${s.kind}: status unset for a 200`);
  } finally {
    await mesh.close();
    await receiver.close();
  }
});

test('an incoming sampled traceparent is continued, not restarted, even at 0% sampling; tracestate goes on', async () => {
  const receiver = await startReceiver();
  const mesh = await startMesh(receiver.url, 0);
  try {
    const r = await send(mesh.frontendOut.port, { host: BACKEND, headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01`, tracestate: 'vendor=abc' } });
    assert.equal(r.status, 200);
    const spans = await spansOf(receiver, TRACE_ID, 4);
    assert.equal(spans.length, 4);
    const root = spans.find((s) => s.service === 'frontend' && s.kind === CLIENT)!;
    assert.equal(root.parentSpanId, PARENT_ID);
    const got = mesh.backendApp.received[0]!.headers;
    assert.match(String(got.traceparent), new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`));
    assert.notEqual(String(got.traceparent).split('-')[2], PARENT_ID, 'the parent id is this hop\'s span, not the client\'s');
    assert.equal(got.tracestate, 'vendor=abc');
  } finally {
    await mesh.close();
    await receiver.close();
  }
});

test('an unsampled parent stays unsampled: nothing exported, the decision propagated', async () => {
  const receiver = await startReceiver();
  const mesh = await startMesh(receiver.url, 1);
  try {
    const r = await send(mesh.frontendOut.port, { host: BACKEND, headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-00` } });
    assert.equal(r.status, 200);
    assert.match(String(mesh.backendApp.received[0]!.headers.traceparent), new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-00$`));
    assert.equal((await spansOf(receiver, TRACE_ID, 1)).length, 0);
  } finally {
    await mesh.close();
    await receiver.close();
  }
});

test('B3 multi-header in: continued and converted, W3C and B3 out', async () => {
  const receiver = await startReceiver();
  const mesh = await startMesh(receiver.url, 0);
  try {
    const r = await send(mesh.frontendOut.port, { host: BACKEND, headers: { 'x-b3-traceid': TRACE_ID, 'x-b3-spanid': PARENT_ID, 'x-b3-sampled': '1' } });
    assert.equal(r.status, 200);
    const got = mesh.backendApp.received[0]!.headers;
    assert.match(String(got.traceparent), new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`));
    assert.equal(got['x-b3-traceid'], TRACE_ID);
    assert.equal(got['x-b3-spanid'], String(got.traceparent).split('-')[2]);
    assert.equal(got['x-b3-sampled'], '1');
    const spans = await spansOf(receiver, TRACE_ID, 4);
    assert.equal(spans.find((s) => s.service === 'frontend')!.parentSpanId, PARENT_ID);
  } finally {
    await mesh.close();
    await receiver.close();
  }
});

test('B3 single header in: continued, and the b3 header goes out beside traceparent', async () => {
  const receiver = await startReceiver();
  const mesh = await startMesh(receiver.url, 0);
  try {
    const r = await send(mesh.frontendOut.port, { host: BACKEND, headers: { b3: `${TRACE_ID}-${PARENT_ID}-1` } });
    assert.equal(r.status, 200);
    const got = mesh.backendApp.received[0]!.headers;
    const spanId = String(got.traceparent).split('-')[2];
    assert.match(String(got.traceparent), new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`));
    assert.equal(got.b3, `${TRACE_ID}-${spanId}-1`);
    assert.equal((await spansOf(receiver, TRACE_ID, 4)).length, 4);
  } finally {
    await mesh.close();
    await receiver.close();
  }
});

test('a dead OTLP endpoint changes nothing for traffic; a hanging one fills the bounded queue and drops are counted', async () => {
  // Dead: connection refused.
  const dead = `http://127.0.0.1:${await closedPort()}/v1/traces`;
  const mesh = await startMesh(dead, 1);
  try {
    for (let i = 0; i < 20; i++) {
      const r = await send(mesh.frontendOut.port, { host: BACKEND });
      assert.equal(r.status, 200);
      assert.equal(r.body, 'backend<db>');
    }
  } finally {
    await mesh.close();
  }

  // Hanging: accepts, never answers. 512 spans in the export in flight, MAX_QUEUE_SIZE queued; the rest dropped.
  const sockets = new Set<import('node:net').Socket>();
  const hanging = http.createServer(() => undefined);
  hanging.on('connection', (s) => sockets.add(s));
  await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
  const metrics = new MetricsRegistry();
  configureTracing({ metrics, local: { namespace: 'demo', podName: 'test-pod' } });
  const upstream = await startUpstream('app');
  const proxy = await hop(listener('hang-out', { tracing: { ...tracing(`http://127.0.0.1:${(hanging.address() as AddressInfo).port}/v1/traces`, 'frontend'), timeoutMs: 30_000 } }), `outbound|80||${BACKEND}`, upstream);
  try {
    const before = TRACE_STATS.droppedTotal;
    const total = MAX_QUEUE_SIZE + 512 + 400;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    const statuses: number[] = [];
    const started = performance.now();
    for (let done = 0; done < total; done += 100) {
      const batch = await Promise.all(Array.from({ length: 100 }, () => send(proxy.port, { host: BACKEND, agent })));
      statuses.push(...batch.map((b) => b.status));
    }
    const ms = performance.now() - started;
    agent.destroy();
    assert.ok(statuses.every((s) => s === 200), 'every request answered 200');
    assert.ok(ms < 30_000, `requests were not held by the exporter (${Math.round(ms)} ms)`);
    const dropped = TRACE_STATS.droppedTotal - before;
    assert.ok(dropped >= 300, `spans beyond the queue dropped: ${dropped}`);
    assert.match(await metrics.render(), new RegExp(`^weft_trace_spans_dropped_total ${dropped}$`, 'm'));
  } finally {
    await proxy.close();
    await upstream.close();
    for (const s of sockets) s.destroy();
    hanging.close();
    configureTracing({ local: { namespace: 'demo', podName: 'test-pod' } });
    await shutdownTracers(100); // the dead and hanging exporters go; later tests start afresh
  }
});

test('gRPC over h2c: client and server spans with RPC attributes and the gRPC status from the trailers', async () => {
  const receiver = await startReceiver();
  const app = await startH2App((stream) => grpcReply(stream, 14, [], 'backend down'));
  const inbound = await hop(listener('grpc-in', { direction: 'inbound', tracing: tracing(receiver.url, 'backend') }), 'inbound|8080||', app);
  const outbound = await hop(listener('grpc-out', { tracing: tracing(receiver.url, 'frontend') }), `outbound|80||${BACKEND}`, inbound);
  try {
    const reply = await h2Send(outbound.port, grpcHeaders(BACKEND), [grpcFrame('hi')]);
    assert.equal(reply.trailers?.['grpc-status'], '14');
    const traceparent = String(app.calls[0]!.headers.traceparent);
    const traceId = traceparent.split('-')[1]!;
    const spans = await spansOf(receiver, traceId, 2);
    const client = spans.find((s) => s.kind === CLIENT)!;
    const server = spans.find((s) => s.kind === SERVER)!;
    assert.equal(server.parentSpanId, client.spanId);
    assert.equal(traceparent, `00-${traceId}-${server.spanId}-01`);
    for (const s of [client, server]) {
      assert.equal(s.name, 'weft.test.Echo/Unary');
      assert.equal(s.attributes['rpc.system'], 'grpc');
      assert.equal(s.attributes['rpc.service'], 'weft.test.Echo');
      assert.equal(s.attributes['rpc.method'], 'Unary');
      assert.equal(s.attributes['rpc.grpc.status_code'], 14);
      assert.equal(s.attributes['network.protocol.version'], '2');
      assert.equal(s.status, 2, `${s.service}: UNAVAILABLE is an error on both sides`);
    }
    assert.equal(client.attributes['weft.destination.service'], BACKEND);
    assert.equal(client.attributes['weft.upstream.address'], `127.0.0.1:${inbound.port}`);
  } finally {
    await outbound.close();
    await inbound.close();
    await app.close();
    await receiver.close();
  }
});

test('a config update changes sampling for the next request; removing tracing leaves headers untouched', async () => {
  const receiver = await startReceiver();
  const app = await startUpstream('app');
  const spec = listener('swap-out', { tracing: tracing(receiver.url, 'frontend', 0) });
  const proxy = await hop(spec, `outbound|80||${BACKEND}`, app);
  try {
    assert.equal((await send(proxy.port, { host: BACKEND })).status, 200);
    assert.match(String(app.received[0]!.headers.traceparent), /-00$/, '0%: a new trace is not sampled, its context still propagated');
    proxy.listener.update({ ...spec, tracing: tracing(receiver.url, 'frontend', 1) });
    assert.equal((await send(proxy.port, { host: BACKEND })).status, 200);
    const sampled = String(app.received[1]!.headers.traceparent);
    assert.match(sampled, /-01$/);
    assert.equal((await spansOf(receiver, sampled.split('-')[1], 1)).length, 1);
    const { tracing: _off, ...untraced } = spec;
    proxy.listener.update(untraced);
    assert.equal((await send(proxy.port, { host: BACKEND, headers: { traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` } })).status, 200);
    assert.equal(app.received[2]!.headers.traceparent, `00-${TRACE_ID}-${PARENT_ID}-01`, 'no tracing: passed through as received');
    assert.equal(app.received[2]!.headers['x-b3-traceid'], undefined);
  } finally {
    await proxy.close();
    await app.close();
    await receiver.close();
  }
});

test('a retried request is one client span with the retry count and the last attempt\'s endpoint', async () => {
  const receiver = await startReceiver();
  let calls = 0;
  const app = await startUpstream('app', (_req, res) => {
    res.writeHead(calls++ === 0 ? 503 : 200);
    res.end();
  });
  const clusterName = `outbound|80||${BACKEND}`;
  const config = proxyConfig({
    routeTables: [routeTable('outbound', [vhost('all', ['*'], [{ ...route('retrying', clusterName), retry: retryPolicy({ retryOn: ['5xx'], numRetries: 2, backoff: { baseMs: 5, maxMs: 10 } }) }])])],
    clusters: [cluster(clusterName)],
    endpoints: { [clusterName]: [app.endpoint()] },
  });
  const proxy = await startProxy(config, listener('retry-out', { tracing: tracing(receiver.url, 'frontend') }));
  try {
    assert.equal((await send(proxy.port, { host: BACKEND })).status, 200);
    assert.equal(calls, 2);
    const traceId = String(app.received[1]!.headers.traceparent).split('-')[1]!;
    assert.equal(app.received[0]!.headers.traceparent, app.received[1]!.headers.traceparent, 'both attempts carry the one client span');
    const [span] = await spansOf(receiver, traceId, 1);
    assert.equal(span!.attributes['weft.retry.count'], 1);
    assert.equal(span!.attributes['weft.route.name'], 'retrying');
    assert.equal(span!.attributes['http.response.status_code'], 200);
    assert.equal(span!.attributes['weft.upstream.address'], `127.0.0.1:${app.port}`);
    assert.equal(span!.status, 0);
  } finally {
    await proxy.close();
    await app.close();
    await receiver.close();
  }
});
