/**
 * The admission webhooks over real HTTPS on loopback, with a serving certificate issued by the
 * real CA (checked with openssl): AdmissionReview in and out, bad bodies, size limit, certificate
 * renewal without a restart, metrics, and close.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '@weft/api';
import * as prom from 'prom-client';
import { CertificateAuthority } from '../src/ca-authority';
import { startControlPlane } from '../src/control-plane';
import { ServingCertificate, servingNamesFor } from '../src/ca-serving-cert';
import { FileCaStore } from '../src/ca-store-files';
import { DEFAULT_INJECTION_CONFIG } from '../src/inject-config';
import { WebhookServer, type ServingKeyPair } from '../src/webhook-server';
import { recordingLogger } from './ca-fixtures';
import { readFixture } from './inject-fixtures';

const DNS = ['weft-control-plane.weft-system.svc', 'weft-control-plane.weft-system.svc.cluster.local'];

interface Reply { status: number; body: string; headers: Record<string, unknown>; serial: string }

function call(port: number, rootPem: string, method: string, path: string, body?: string | Buffer, extra: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, ca: rootPem, agent: false, headers: body !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}, ...extra }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers, serial: (res.socket as TLSSocket).getPeerCertificate().serialNumber }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

describe('webhook server over HTTPS', () => {
  let ca: CertificateAuthority;
  let pair: ServingKeyPair;
  let server: WebhookServer;
  let metrics: prom.Registry;
  let dir: string;
  const { log, lines } = recordingLogger();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-webhook-'));
    ca = await CertificateAuthority.open({ store: new FileCaStore(dir), log: silentLogger });
    const issued = ca.issueServingKeyPair(DNS, ['127.0.0.1']);
    pair = { key: issued.keyPem, cert: issued.chainPem };
    metrics = new prom.Registry();
    server = new WebhookServer({ address: '127.0.0.1:0', tls: () => pair, injection: () => DEFAULT_INJECTION_CONFIG, metrics, log, maxBodyBytes: 1024 * 1024 });
    await server.listen();
  });
  after(async () => {
    await server.close();
    ca.close();
  });

  it('the serving certificate verifies against the root with openssl and carries the DNS and IP SANs', () => {
    writeFileSync(join(dir, 'root.pem'), ca.rootPem());
    writeFileSync(join(dir, 'serving.pem'), String(pair.cert));
    const verify = spawnSync('openssl', ['verify', '-CAfile', join(dir, 'root.pem'), join(dir, 'serving.pem')], { encoding: 'utf8' });
    assert.equal(verify.status, 0, verify.stderr);
    assert.match(verify.stdout, /serving\.pem: OK/);
    const text = spawnSync('openssl', ['x509', '-in', join(dir, 'serving.pem'), '-noout', '-ext', 'subjectAltName'], { encoding: 'utf8' });
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /DNS:weft-control-plane\.weft-system\.svc, DNS:weft-control-plane\.weft-system\.svc\.cluster\.local, IP Address:127\.0\.0\.1/);
    assert.throws(() => ca.issueServingKeyPair(DNS, ['not-an-ip']), /"not-an-ip" is not an IP address/);
  });

  it('POST /inject answers an AdmissionReview v1 with the uid and a base64 JSON Patch', async () => {
    const review = readFixture('pod-deployment.request.json');
    const r = await call(server.port, ca.rootPem(), 'POST', '/inject', JSON.stringify(review));
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^application\/json/);
    const out = JSON.parse(r.body);
    assert.equal(out.apiVersion, 'admission.k8s.io/v1');
    assert.equal(out.kind, 'AdmissionReview');
    assert.equal(out.response.uid, review.request.uid);
    assert.equal(out.response.allowed, true);
    assert.equal(out.response.patchType, 'JSONPatch');
    const ops = JSON.parse(Buffer.from(out.response.patch, 'base64').toString('utf8'));
    assert.ok(ops.some((o: { path: string }) => o.path === '/spec/initContainers'), 'adds the init containers');
    assert.ok(lines.some((l) => l.msg === 'admission inject: injected' && l.object === 'shop/web-6b7f9c7d4d-*'), 'one log line per decision');
  });

  it('POST /inject of an opted-out pod or a non-CREATE is allowed without a patch', async () => {
    for (const f of ['pod-opt-out', 'pod-not-a-create']) {
      const review = readFixture(`${f}.request.json`);
      const out = JSON.parse((await call(server.port, ca.rootPem(), 'POST', '/inject', JSON.stringify(review))).body);
      assert.deepEqual(out.response, { uid: review.request.uid, allowed: true }, f);
    }
  });

  it('POST /validate denies an invalid policy naming the field, and allows a DELETE', async () => {
    const bad = JSON.parse((await call(server.port, ca.rootPem(), 'POST', '/validate', JSON.stringify(readFixture('validate-trafficpolicy-bad.request.json')))).body);
    assert.equal(bad.response.allowed, false);
    assert.match(bad.response.status.message, /spec\.routes\[0\]\.timeout: must be a duration/);
    const del = JSON.parse((await call(server.port, ca.rootPem(), 'POST', '/validate', JSON.stringify(readFixture('validate-delete.request.json')))).body);
    assert.equal(del.response.allowed, true);
  });

  it('a bad body is a 400 with one clear line; wrong method 405, unknown path 404; /healthz 200', async () => {
    const notJson = await call(server.port, ca.rootPem(), 'POST', '/inject', '{"apiVersion": ');
    assert.equal(notJson.status, 400);
    assert.match(notJson.body, /^bad AdmissionReview: the body is not JSON: .*\n$/);
    const v1beta1 = await call(server.port, ca.rootPem(), 'POST', '/validate', JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: {} }));
    assert.equal(v1beta1.status, 400);
    assert.match(v1beta1.body, /expected apiVersion admission\.k8s\.io\/v1, kind AdmissionReview/);
    assert.equal((await call(server.port, ca.rootPem(), 'GET', '/inject')).status, 405);
    assert.equal((await call(server.port, ca.rootPem(), 'POST', '/mutate', '{}')).status, 404);
    const health = await call(server.port, ca.rootPem(), 'GET', '/healthz');
    assert.equal(health.status, 200);
    assert.equal(health.body, 'ok\n');
  });

  it('a body over the limit is refused with 413, by its length or while it streams', async () => {
    const big = Buffer.alloc(1024 * 1024 + 1, 0x20);
    const declared = await call(server.port, ca.rootPem(), 'POST', '/inject', big);
    assert.equal(declared.status, 413);
    assert.match(declared.body, /exceeds 1048576 bytes/);
    // Chunked: no content-length, the limit is found while reading.
    const streamed = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: server.port, method: 'POST', path: '/inject', ca: ca.rootPem(), agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'EPIPE' || (e as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(e)));
      for (let i = 0; i < 20; i++) req.write(Buffer.alloc(64 * 1024, 0x20));
      req.end();
    });
    assert.equal(streamed, 413);
    // The server still works.
    assert.equal((await call(server.port, ca.rootPem(), 'GET', '/healthz')).status, 200);
  });

  it('counts requests by webhook and result, and times injections', async () => {
    const text = await metrics.metrics();
    assert.match(text, /weft_webhook_requests_total\{webhook="inject",result="injected"\} 1\b/);
    assert.match(text, /weft_webhook_requests_total\{webhook="inject",result="skipped"\} 1\b/);
    assert.match(text, /weft_webhook_requests_total\{webhook="validate",result="denied"\} 1\b/);
    assert.match(text, /weft_webhook_requests_total\{webhook="inject",result="bad_request"\} [1-9]/);
    assert.match(text, /weft_webhook_requests_total\{webhook="inject",result="too_large"\} 2\b/);
    assert.match(text, /weft_webhook_injection_duration_seconds_count [3-9]\b/);
  });

  it('a renewed certificate from the provider is served on the next connection, without a restart', async () => {
    const before = await call(server.port, ca.rootPem(), 'GET', '/healthz');
    assert.equal(before.serial.toLowerCase(), new X509Certificate(String(pair.cert)).serialNumber.toLowerCase());
    const renewed = ca.issueServingKeyPair(DNS, ['127.0.0.1']);
    pair = { key: renewed.keyPem, cert: renewed.chainPem };
    const afterRenewal = await call(server.port, ca.rootPem(), 'GET', '/healthz');
    assert.equal(afterRenewal.status, 200);
    assert.equal(afterRenewal.serial.toLowerCase(), renewed.serialHex.toLowerCase());
    assert.notEqual(afterRenewal.serial, before.serial);
    // A broken pair from the provider is logged and the current certificate kept.
    pair = { key: 'not a key', cert: 'not a cert' };
    const still = await call(server.port, ca.rootPem(), 'GET', '/healthz');
    assert.equal(still.serial.toLowerCase(), renewed.serialHex.toLowerCase());
    assert.ok(lines.some((l) => l.level === 'error' && /does not load/.test(String(l.msg))));
    pair = { key: renewed.keyPem, cert: renewed.chainPem };
  });

  it('with a ServingCertificate as provider, a root rotation reaches the next connection', async () => {
    const dir2 = mkdtempSync(join(tmpdir(), 'weft-webhook-rot-'));
    const ca2 = await CertificateAuthority.open({ store: new FileCaStore(dir2), log: silentLogger });
    const serving = new ServingCertificate(ca2, servingNamesFor('127.0.0.1:0', DNS), silentLogger);
    const other = new WebhookServer({ address: '127.0.0.1:0', tls: () => serving.current(), injection: DEFAULT_INJECTION_CONFIG, metrics: new prom.Registry(), log: silentLogger });
    try {
      const port = await other.listen();
      const oldRoot = ca2.rootPem();
      const first = await call(port, oldRoot, 'GET', '/healthz');
      assert.equal(first.serial.toLowerCase(), serving.current().serialHex.toLowerCase());
      await ca2.rotateRoot();
      assert.notEqual(ca2.rootPem(), oldRoot);
      const second = await call(port, ca2.rootPem(), 'GET', '/healthz');
      assert.equal(second.status, 200, 'the new certificate verifies against the new root');
      assert.equal(second.serial.toLowerCase(), serving.current().serialHex.toLowerCase());
      assert.notEqual(second.serial, first.serial);
      await assert.rejects(call(port, oldRoot, 'GET', '/healthz'), /certificate/i, 'a client trusting only the old root no longer verifies it');
    } finally {
      serving.close();
      await other.close();
      ca2.close();
    }
  });

  it('a request that does not finish within the deadline gets 408 and its connection closed', async () => {
    const slow = new WebhookServer({ address: '127.0.0.1:0', tls: () => pair, injection: DEFAULT_INJECTION_CONFIG, metrics: new prom.Registry(), log: silentLogger, requestTimeoutMs: 500 });
    const port = await slow.listen();
    try {
      const started = Date.now();
      const status = await new Promise<number | string>((resolve) => {
        const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/inject', ca: ca.rootPem(), agent: false, headers: { 'content-length': '100' } }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        req.write('{"apiVersion":'); // and never the rest
      });
      assert.ok(status === 408 || status === 'ECONNRESET', `got ${status}`);
      assert.ok(Date.now() - started < 5000, 'ended by the server, well before any client timeout');
    } finally {
      slow.destroy();
    }
  });

  it('close() is idempotent and stops accepting', async () => {
    const other = new WebhookServer({ address: '127.0.0.1:0', tls: () => pair, injection: DEFAULT_INJECTION_CONFIG, metrics: new prom.Registry(), log: silentLogger });
    const port = await other.listen();
    assert.equal((await call(port, ca.rootPem(), 'GET', '/healthz')).status, 200);
    await Promise.all([other.close(), other.close()]);
    other.destroy();
    await assert.rejects(call(port, ca.rootPem(), 'GET', '/healthz'), /ECONNREFUSED/);
  });
});

describe('weft control-plane --webhook-address (startControlPlane with webhooks)', () => {
  it('serves /inject with a certificate from its own CA that names the control plane Service', async () => {
    const manifests = mkdtempSync(join(tmpdir(), 'weft-webhook-m-'));
    const dataDir = mkdtempSync(join(tmpdir(), 'weft-webhook-d-'));
    const cp = await startControlPlane({
      manifestsDir: manifests, xdsAddress: '127.0.0.1:0', debugAddress: '127.0.0.1:0', debounceMs: 10, log: silentLogger,
      identity: { dataDir, caAddress: '127.0.0.1:0' },
      webhooks: { address: '127.0.0.1:0', injection: DEFAULT_INJECTION_CONFIG, namespace: 'mesh' },
    });
    try {
      assert.ok(cp.webhookPort! > 0);
      const review = readFixture('pod-job.request.json');
      const r = await call(cp.webhookPort!, cp.ca!.rootPem(), 'POST', '/inject', JSON.stringify(review));
      assert.equal(r.status, 200);
      assert.equal(JSON.parse(r.body).response.patchType, 'JSONPatch');
      const peer = await new Promise<X509Certificate>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: cp.webhookPort!, path: '/healthz', ca: cp.ca!.rootPem(), agent: false }, (res) => {
          resolve(new X509Certificate((res.socket as TLSSocket).getPeerX509Certificate()!.raw));
          res.resume();
        });
        req.on('error', reject);
        req.end();
      });
      assert.match(peer.subjectAltName ?? '', /DNS:weft-control-plane\.mesh\.svc, DNS:weft-control-plane\.mesh\.svc\.cluster\.local/);
      const metrics = await (await fetch(`http://127.0.0.1:${cp.debugPort}/metrics`)).text();
      assert.match(metrics, /weft_webhook_requests_total\{webhook="inject",result="injected"\} 1/, 'on the control plane\'s /metrics');
    } finally {
      await cp.close();
    }
    await assert.rejects(startControlPlane({ manifestsDir: manifests, xdsAddress: '127.0.0.1:0', debugAddress: '127.0.0.1:0', log: silentLogger, webhooks: { address: '127.0.0.1:0', injection: DEFAULT_INJECTION_CONFIG } }),
      /the admission webhooks need identity/);
  });
});
