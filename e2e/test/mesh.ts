/**
 * Shared builders for end-to-end tests: a manifests directory, a control plane and sidecars on
 * their own loopback addresses, and real HTTP and gRPC apps. Each test file takes its own
 * `127.<a>.<b>.0/24` so files can run side by side.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { createLogger, silentLogger, type Logger } from '@weft/api';
import { startControlPlane, type ControlPlane } from '@weft/control-plane';
import { startSidecar, type Sidecar } from '@weft/sidecar';

export const log: Logger = process.env.WEFT_TEST_LOG ? createLogger({ test: true }) : silentLogger;

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `weft-${prefix}-`));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 20 ms until it returns a truthy value, or throws after `timeoutMs`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(20);
  }
}

export interface PodSpec {
  name: string;
  ip: string;
  labels: Record<string, string>;
  serviceAccount?: string;
}

export function podYaml(ns: string, p: PodSpec): string {
  const labels = Object.entries(p.labels).map(([k, v]) => `    ${k}: ${v}`).join('\n');
  return `apiVersion: v1
kind: Pod
metadata:
  name: ${p.name}
  namespace: ${ns}
  labels:
${labels}
spec:
  serviceAccountName: ${p.serviceAccount ?? 'default'}
  containers:
  - name: app
    image: app
status:
  podIP: ${p.ip}
`;
}

export function serviceYaml(ns: string, name: string, selector: Record<string, string>, ports: { name: string; port: number; targetPort: number }[]): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  selector:
${Object.entries(selector).map(([k, v]) => `    ${k}: ${v}`).join('\n')}
  ports:
${ports.map((p) => `  - name: ${p.name}\n    port: ${p.port}\n    targetPort: ${p.targetPort}`).join('\n')}
`;
}

/** A TrafficPolicy splitting `svc` between subsets v1 and v2 by version label. */
export function splitPolicyYaml(ns: string, svc: string, v1: number, v2: number, extraRoutes = '', name = svc): string {
  return `apiVersion: weft.dev/v1alpha1
kind: TrafficPolicy
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  targetRef: {kind: Service, name: ${svc}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  routes:
${extraRoutes}  - name: default
    backends:
    - {subset: v1, weight: ${v1}}
    - {subset: v2, weight: ${v2}}
`;
}

/** Writes a file atomically (rename), as editors and `kubectl`-style tools do. */
export function writeManifest(dir: string, file: string, content: string): void {
  const tmp = path.join(dir, `.${file}.tmp`);
  fs.writeFileSync(tmp, content);
  fs.renameSync(tmp, path.join(dir, file));
}

export async function controlPlane(dir: string, ip: string, debounceMs = 50): Promise<ControlPlane> {
  return startControlPlane({ manifestsDir: dir, xdsAddress: `${ip}:15010`, debugAddress: `${ip}:15014`, debounceMs, log: log.child({ c: 'cp' }) });
}

export async function sidecar(cpIp: string, ns: string, pod: PodSpec): Promise<Sidecar> {
  const s = await startSidecar({
    xdsAddress: `${cpIp}:15010`,
    podName: pod.name,
    namespace: ns,
    podIp: pod.ip,
    serviceAccount: pod.serviceAccount ?? 'default',
    trustDomain: 'cluster.local',
    drainTimeoutMs: 1000,
    log: log.child({ c: `sidecar ${pod.name}` }),
  });
  await s.ready;
  return s;
}

/** An HTTP app answering `<name>` (its pod name) on ip:port; counts requests. */
export async function httpApp(ip: string, port: number, name: string): Promise<http.Server & { hits: number }> {
  const server = http.createServer((req, res) => {
    server.hits++;
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-served-by': name });
      res.end(name);
    });
  }) as http.Server & { hits: number };
  server.hits = 0;
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(port, ip, () => r()));
  return server;
}

export async function closeServer(s: http.Server | undefined): Promise<void> {
  if (!s) return;
  s.closeAllConnections();
  await new Promise<void>((r) => s.close(() => r()));
}

/** Messages as raw bytes, both ways: test services need no protobuf definitions. */
export const rawCodec = { requestSerialize: (b: Buffer) => b, requestDeserialize: (b: Buffer) => b, responseSerialize: (b: Buffer) => b, responseDeserialize: (b: Buffer) => b };

/** A raw-bytes gRPC method of `service` (`/weft.test.<service>/<name>`). */
export function rawMethod(service: string, name: string, requestStream = false, responseStream = false): grpc.MethodDefinition<Buffer, Buffer> {
  return { path: `/weft.test.${service}/${name}`, requestStream, responseStream, ...rawCodec };
}

/** A raw-bytes unary gRPC method `/weft.test.Echo/Who` answering its server's name. */
export const echoService: grpc.ServiceDefinition = { Who: rawMethod('Echo', 'Who') };

export async function grpcApp(ip: string, port: number, name: string): Promise<grpc.Server> {
  const server = new grpc.Server();
  server.addService(echoService, {
    Who: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(name)),
  });
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`${ip}:${port}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  return server;
}

/** A keep-alive HTTP client that sends through a sidecar's outbound listener. */
export class MeshClient {
  readonly agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  constructor(private readonly sidecarIp: string, private readonly port = 15001) {}

  /** Resolves with status and body; never rejects (a transport error is status 0). */
  get(host: string, pathName = '/', headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
    return new Promise((resolve) => {
      const req = http.request({ host: this.sidecarIp, port: this.port, path: pathName, agent: this.agent, headers: { host, ...headers }, timeout: 5000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', (e) => resolve({ status: 0, body: e.message }));
      });
      req.on('timeout', () => req.destroy(new Error('client timeout')));
      req.on('error', (e) => resolve({ status: 0, body: e.message }));
      req.end();
    });
  }

  /** Sends `n` requests, `concurrency` at a time; returns counts by body, and failures. */
  async spread(host: string, n: number, concurrency = 8): Promise<{ counts: Map<string, number>; failures: string[] }> {
    const counts = new Map<string, number>();
    const failures: string[] = [];
    let sent = 0;
    const worker = async (): Promise<void> => {
      while (sent < n) {
        sent++;
        const r = await this.get(host);
        if (r.status === 200) counts.set(r.body, (counts.get(r.body) ?? 0) + 1);
        else failures.push(`${r.status} ${r.body}`);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return { counts, failures };
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * Steady traffic in the background until stopped, or for at most `maxMs` (so a test that fails
 * before stopping it cannot hang the run): every result is recorded.
 */
export function steadyTraffic(client: MeshClient, host: string, everyMs = 5, maxMs = 30_000): { stop(): Promise<{ ok: number; failures: string[] }> } {
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const deadline = Date.now() + maxMs;
  const loop = (async () => {
    while (running && Date.now() < deadline) {
      const r = await client.get(host);
      if (r.status === 200) ok++;
      else failures.push(`${new Date().toISOString()} ${r.status} ${r.body}`);
      await sleep(everyMs);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { ok, failures };
    },
  };
}

export async function getJson(url: string): Promise<any> {
  return new Promise((resolve, reject) => {
    http.get(url, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch (err) {
          reject(new Error(`${url}: ${res.statusCode} ${body.slice(0, 200)}`, { cause: err }));
        }
      });
    }).on('error', reject);
  });
}

export function share(counts: Map<string, number>, key: string): number {
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  return total ? (100 * (counts.get(key) ?? 0)) / total : 0;
}

/**
 * The usual test topology in namespace `shop` on `127.10.<subnet>.0/24`: a control plane at .1, a
 * `frontend` pod at .11 with a sidecar (unless `controlPlane: false` leaves starting one to the
 * test), and `backend-v1` (.21) and `backend-v2` (.22) with HTTP apps on 8080 and gRPC on 9090,
 * reached directly. `policy` gives the initial v1/v2 split of Service `backend`.
 */
export class ShopMesh {
  static readonly NS = 'shop';
  static readonly HOST = 'backend.shop.svc.cluster.local';
  readonly cpIp: string;
  readonly frontend: PodSpec;
  readonly v1: PodSpec;
  readonly v2: PodSpec;
  readonly nodeId: string;
  readonly dir: string;
  cp?: ControlPlane;
  sidecar?: Sidecar;
  client!: MeshClient;
  private readonly closers: (() => Promise<void> | void)[] = [];

  constructor(subnet: number, readonly name: string) {
    const ip = (h: number): string => `127.10.${subnet}.${h}`;
    this.cpIp = ip(1);
    this.frontend = { name: 'frontend', ip: ip(11), labels: { app: 'frontend' } };
    this.v1 = { name: 'backend-v1', ip: ip(21), labels: { app: 'backend', version: 'v1' } };
    this.v2 = { name: 'backend-v2', ip: ip(22), labels: { app: 'backend', version: 'v2' } };
    this.nodeId = `sidecar~${this.frontend.ip}~frontend.shop~shop.svc.cluster.local`;
    this.dir = tempDir(name);
  }

  /** Writes the manifests, starts the apps, and (unless told not to) the control plane and sidecar. */
  async start(split: [number, number], opts: { controlPlane?: boolean; grpc?: boolean; debounceMs?: number } = {}): Promise<this> {
    writeManifest(this.dir, 'pods.yaml', [this.frontend, this.v1, this.v2].map((p) => podYaml(ShopMesh.NS, p)).join('---\n'));
    writeManifest(this.dir, 'services.yaml', [
      serviceYaml(ShopMesh.NS, 'backend', { app: 'backend' }, [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'grpc', port: 9090, targetPort: 9090 }]),
      serviceYaml(ShopMesh.NS, 'frontend', { app: 'frontend' }, [{ name: 'http', port: 80, targetPort: 8080 }]),
    ].join('---\n'));
    this.setPolicy(split[0], split[1]);
    for (const p of [this.v1, this.v2]) {
      const h = await httpApp(p.ip, 8080, p.name);
      this.closers.push(() => closeServer(h));
      if (opts.grpc) {
        const g = await grpcApp(p.ip, 9090, p.name);
        this.closers.push(() => g.forceShutdown());
      }
    }
    if (opts.controlPlane !== false) this.cp = await controlPlane(this.dir, this.cpIp, opts.debounceMs);
    this.sidecar = await sidecar(this.cpIp, ShopMesh.NS, this.frontend);
    this.client = new MeshClient(this.frontend.ip);
    return this;
  }

  setPolicy(v1: number, v2: number, extraRoutes = ''): void {
    writeManifest(this.dir, 'policy.yaml', splitPolicyYaml(ShopMesh.NS, 'backend', v1, v2, extraRoutes));
  }

  /** The control plane's view of this sidecar (`/debug/syncz`). */
  async sync(): Promise<any> {
    const all = await getJson(`http://${this.cpIp}:15014/debug/syncz`);
    return all.find((n: any) => n.node === this.nodeId);
  }

  async close(): Promise<void> {
    this.client?.close();
    // The control plane first: a sidecar's shutdown grace would otherwise give in-process xDS
    // clients (grpc-js-xds) time to reconnect to a control plane that is about to close.
    await this.cp?.close();
    await this.sidecar?.close();
    for (const c of this.closers) await c();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The built `weft` CLI. */
export const WEFT_CLI = path.join(__dirname, '../../../cli/dist/src/main.js');

/** Runs the weft CLI without blocking this process (the servers it talks to may live here). */
export function runWeft(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [WEFT_CLI, ...args], { env: { ...process.env, WEFT_LOG_LEVEL: 'silent' } });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code) => resolve({ code, out }));
  });
}
