/**
 * Issue 3: gRPC through the mesh with a TrafficPolicy that retries `unavailable`. The backend pods'
 * gRPC apps (grpc-js) fail 30% of calls of every kind with UNAVAILABLE after sending their response
 * headers, so the status is in trailers; a grpc-js client calling through the frontend's sidecar
 * sees no failure for unary, server-streaming, client-streaming and bidi calls, and a deadline
 * still expires on time. Subnet 127.10.42.0/24.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { rawMethod, ShopMesh, writeManifest } from './mesh';

const service: grpc.ServiceDefinition = {
  Unary: rawMethod('Flaky', 'Unary'),
  Count: rawMethod('Flaky', 'Count', false, true),
  Join: rawMethod('Flaky', 'Join', true, false),
  Chat: rawMethod('Flaky', 'Chat', true, true),
  Slow: rawMethod('Flaky', 'Slow'),
};
const Client = grpc.makeGenericClientConstructor(service, 'Flaky');
type FlakyClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

const FAIL_SHARE = 0.3;
const attempts = { total: 0, failed: 0 };
const unavailable = { code: grpc.status.UNAVAILABLE, details: 'flaky backend' };

/** Fails a share of calls: response headers first, then UNAVAILABLE in trailers, before any message. */
function failsNow(call: { sendMetadata(md: grpc.Metadata): void }): boolean {
  attempts.total++;
  if (Math.random() >= FAIL_SHARE) return false;
  attempts.failed++;
  call.sendMetadata(new grpc.Metadata());
  return true;
}

async function flakyApp(ip: string, name: string): Promise<grpc.Server> {
  const server = new grpc.Server();
  server.addService(service, {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      if (failsNow(call)) return setImmediate(() => cb(unavailable));
      cb(null, Buffer.from(`${name}:${call.request.toString()}`));
    },
    Count: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      if (failsNow(call)) return setImmediate(() => call.emit('error', unavailable));
      const n = Number(call.request.toString());
      for (let i = 1; i <= n; i++) call.write(Buffer.from(`item-${i}`));
      call.end();
    },
    Join: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const parts: Buffer[] = [];
      call.on('data', (b: Buffer) => parts.push(b));
      call.on('end', () => {
        if (failsNow(call)) return setImmediate(() => cb(unavailable));
        cb(null, Buffer.concat(parts));
      });
    },
    Chat: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      // Decided on the first message; a failed call ignores the rest of its messages.
      let failed: boolean | undefined;
      call.on('data', (b: Buffer) => {
        if (failed === undefined && (failed = failsNow(call))) return setImmediate(() => call.emit('error', unavailable));
        if (!failed) call.write(Buffer.from(b.toString().toUpperCase()));
      });
      call.on('end', () => {
        if (!failed) call.end();
      });
    },
    Slow: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const timer = setTimeout(() => cb(null, Buffer.from('late')), 3000);
      call.on('cancelled', () => clearTimeout(timer));
    },
  });
  await new Promise<void>((resolve, reject) => server.bindAsync(`${ip}:9090`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  return server;
}

const mesh = new ShopMesh(42, 'grpc-retries');
const POLICY = `apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata: {name: backend, namespace: shop}
spec:
  targetRef: {kind: Service, name: backend}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  routes:
  - name: default
    backends: [{subset: v1, weight: 50}, {subset: v2, weight: 50}]
    retries:
      attempts: 10
      retryOn: [unavailable, connect-failure, reset]
      retryNonIdempotent: true
      backoff: {baseInterval: 5ms, maxInterval: 50ms}
  retryBudget: {percent: 60, minRetriesPerSecond: 20}
`;
let client: FlakyClient;
const servers: grpc.Server[] = [];

before(async () => {
  for (const p of [mesh.v1, mesh.v2]) servers.push(await flakyApp(p.ip, p.name));
  // The policy is in place before the control plane starts: the sidecar is ready with it.
  mesh.setPolicy = () => writeManifest(mesh.dir, 'policy.yaml', POLICY);
  await mesh.start([50, 50]);
  client = new Client(`${mesh.frontend.ip}:15001`, grpc.credentials.createInsecure(), { 'grpc.default_authority': `${ShopMesh.HOST}:9090` }) as unknown as FlakyClient;
});

after(async () => {
  client?.close();
  await mesh.close();
  for (const s of servers) s.forceShutdown();
});

const deadline = (ms = 10_000): grpc.CallOptions => ({ deadline: Date.now() + ms });

function unary(i: number): Promise<string> {
  return new Promise((resolve, reject) => client.Unary!(Buffer.from(`u${i}`), deadline(), (e: grpc.ServiceError | null, r: Buffer) => (e ? reject(e) : resolve(r.toString()))));
}

async function count(n: number): Promise<string[]> {
  const call = client.Count!(Buffer.from(String(n)), deadline()) as grpc.ClientReadableStream<Buffer>;
  const got: string[] = [];
  for await (const m of call) got.push((m as Buffer).toString());
  return got;
}

function join(parts: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const call = client.Join!(deadline(), (e: grpc.ServiceError | null, r: Buffer) => (e ? reject(e) : resolve(r.toString()))) as grpc.ClientWritableStream<Buffer>;
    for (const p of parts) call.write(Buffer.from(p));
    call.end();
  });
}

async function chat(words: string[]): Promise<string[]> {
  const call = client.Chat!(deadline()) as grpc.ClientDuplexStream<Buffer, Buffer>;
  const got: string[] = [];
  const done = new Promise<void>((resolve, reject) => {
    call.on('data', (b: Buffer) => got.push(b.toString()));
    call.on('error', reject);
    call.on('status', (s: grpc.StatusObject) => (s.code === grpc.status.OK ? resolve() : reject(new Error(s.details))));
  });
  for (const w of words) call.write(Buffer.from(w));
  call.end();
  await done;
  return got;
}

test('all four call kinds through the mesh: 0 failures with 30% of attempts failing UNAVAILABLE in trailers', async (t) => {
  const failures: string[] = [];
  const record = async <T>(what: string, p: Promise<T>, check: (v: T) => boolean): Promise<void> => {
    try {
      const v = await p;
      if (!check(v)) failures.push(`${what}: ${JSON.stringify(v)}`);
    } catch (e) {
      failures.push(`${what}: ${(e as Error).message}`);
    }
  };
  for (let round = 0; round < 40; round++) {
    await Promise.all([
      record(`unary ${round}`, unary(round), (r) => r.endsWith(`:u${round}`)),
      record(`count ${round}`, count(3), (r) => r.join() === 'item-1,item-2,item-3'),
      record(`join ${round}`, join(['a', 'b', String(round)]), (r) => r === `ab${round}`),
      record(`chat ${round}`, chat(['x', 'y']), (r) => r.join() === 'X,Y'),
    ]);
  }
  t.diagnostic(`backend attempts ${attempts.total}, failed ${attempts.failed}`);
  assert.deepEqual(failures, []);
  assert.ok(attempts.failed >= 20, `the backends failed ${attempts.failed} of ${attempts.total} attempts`);
  assert.equal(attempts.total, 160 + attempts.failed, 'each failed attempt was retried once, nothing more');
});

test('a deadline still expires on time through the mesh (DEADLINE_EXCEEDED, not retried past it)', async () => {
  const started = Date.now();
  await assert.rejects(
    new Promise((resolve, reject) => client.Slow!(Buffer.from('x'), deadline(300), (e: grpc.ServiceError | null, r: Buffer) => (e ? reject(e) : resolve(r)))),
    (e: grpc.ServiceError) => e.code === grpc.status.DEADLINE_EXCEEDED,
  );
  const took = Date.now() - started;
  assert.ok(took >= 290 && took < 800, `took ${took} ms`);
});
