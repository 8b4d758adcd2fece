/**
 * Kubelet probes under STRICT mTLS (docs/configuration.md, "Probes under mTLS"): the injector
 * rewrites each app container's HTTP, TCP and gRPC probes to `GET /app-health/<container>/<kind>`
 * on the sidecar's health port 15021 (control-plane/src/inject-probes.ts) and hands the original
 * probes over in `WEFT_APP_PROBES`; the sidecar then performs the original probe against the app
 * locally, as the kubelet would have, and answers 200 or 503 with the reason. The format is
 * Istio's `ISTIO_KUBE_APP_PROBERS`: a JSON object from path to the kubelet's probe handler,
 *
 *   {"/app-health/web/readyz": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP",
 *     "httpHeaders": [{"name": "x", "value": "y"}]}, "timeoutSeconds": 1},
 *    "/app-health/web/livez": {"tcpSocket": {"port": 8080}},
 *    "/app-health/grpc/livez": {"grpc": {"port": 9090, "service": ""}}}
 *
 * validated once at startup into `AppProbes`. Success is the kubelet's: HTTP 200–399, a TCP
 * connect, a gRPC health check answering SERVING.
 */
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';

export type AppProbe =
  | { readonly kind: 'http'; readonly scheme: 'HTTP' | 'HTTPS'; readonly host?: string; readonly port: number; readonly path: string; readonly headers: readonly (readonly [string, string])[]; readonly timeoutMs: number }
  | { readonly kind: 'tcp'; readonly host?: string; readonly port: number; readonly timeoutMs: number }
  | { readonly kind: 'grpc'; readonly port: number; readonly service: string; readonly timeoutMs: number };

/** By path (`/app-health/<container>/<livez|readyz|startupz>`). */
export type AppProbes = ReadonlyMap<string, AppProbe>;

export const APP_HEALTH_PATH = /^\/app-health\/[^/]+\/(livez|readyz|startupz)$/;

export interface ProbeResult {
  readonly ok: boolean;
  /** For people: `HTTP 200`, `connected`, `SERVING`, `connect ECONNREFUSED`, `timed out after 1000 ms`. */
  readonly reason: string;
}

/** Parses `WEFT_APP_PROBES`; an error names the path and field. Never throws. */
export function parseAppProbes(json: string): { probes: AppProbes } | { error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    return { error: `WEFT_APP_PROBES is not JSON: ${(err as Error).message}` };
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return { error: 'WEFT_APP_PROBES must be a JSON object from path to probe' };
  const probes = new Map<string, AppProbe>();
  for (const [path, v] of Object.entries(raw as Record<string, any>)) {
    const at = `WEFT_APP_PROBES[${JSON.stringify(path)}]`;
    if (!APP_HEALTH_PATH.test(path)) return { error: `${at}: the path must be /app-health/<container>/livez, readyz or startupz` };
    const timeoutS = v?.timeoutSeconds ?? 1;
    if (typeof timeoutS !== 'number' || !(timeoutS > 0)) return { error: `${at}.timeoutSeconds: must be a positive number` };
    const timeoutMs = Math.round(timeoutS * 1000);
    const port = (p: unknown, f: string): number | string => (typeof p === 'number' && Number.isInteger(p) && p >= 1 && p <= 65535 ? p : `${at}.${f}.port: must be a port number (named ports are resolved by the injector)`);
    const handlers = ['httpGet', 'tcpSocket', 'grpc'].filter((k) => v?.[k] !== undefined);
    if (handlers.length !== 1) return { error: `${at}: exactly one of httpGet, tcpSocket or grpc is required` };
    const host = (h: unknown): { host?: string } => (typeof h === 'string' && h !== '' ? { host: h } : {});
    if (v.httpGet) {
      const g = v.httpGet;
      const p = port(g.port, 'httpGet');
      if (typeof p === 'string') return { error: p };
      const scheme = g.scheme ?? 'HTTP';
      if (scheme !== 'HTTP' && scheme !== 'HTTPS') return { error: `${at}.httpGet.scheme: must be HTTP or HTTPS` };
      const path2 = g.path ?? '/';
      if (typeof path2 !== 'string' || !path2.startsWith('/')) return { error: `${at}.httpGet.path: must start with /` };
      const headers: [string, string][] = [];
      for (const h of g.httpHeaders ?? []) {
        if (typeof h?.name !== 'string' || typeof h?.value !== 'string') return { error: `${at}.httpGet.httpHeaders: each needs a name and a value` };
        headers.push([h.name, h.value]);
      }
      probes.set(path, { kind: 'http', scheme, ...host(g.host), port: p, path: path2, headers, timeoutMs });
    } else if (v.tcpSocket) {
      const p = port(v.tcpSocket.port, 'tcpSocket');
      if (typeof p === 'string') return { error: p };
      probes.set(path, { kind: 'tcp', ...host(v.tcpSocket.host), port: p, timeoutMs });
    } else {
      const p = port(v.grpc.port, 'grpc');
      if (typeof p === 'string') return { error: p };
      probes.set(path, { kind: 'grpc', port: p, service: typeof v.grpc.service === 'string' ? v.grpc.service : '', timeoutMs });
    }
  }
  return { probes };
}

/** Runs `probe` against the app at `podIp` (or the probe's own host). Never rejects. */
export function runAppProbe(probe: AppProbe, podIp: string): Promise<ProbeResult> {
  const timedOut = (): ProbeResult => ({ ok: false, reason: `timed out after ${probe.timeoutMs} ms` });
  switch (probe.kind) {
    case 'http': return httpProbe(probe, podIp, timedOut);
    case 'tcp': return tcpProbe(probe, podIp, timedOut);
    case 'grpc': return grpcProbe(probe, podIp, timedOut);
  }
}

function httpProbe(p: Extract<AppProbe, { kind: 'http' }>, podIp: string, timedOut: () => ProbeResult): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const headers: Record<string, string> = { 'user-agent': 'kube-probe/weft', accept: '*/*' };
    for (const [k, v] of p.headers) headers[k.toLowerCase()] = v;
    const options = { host: p.host ?? podIp, port: p.port, path: p.path, method: 'GET', headers, agent: false as const, timeout: p.timeoutMs };
    // The kubelet does not verify an HTTPS probe's certificate; neither do we.
    const req = p.scheme === 'HTTPS' ? https.request({ ...options, rejectUnauthorized: false }) : http.request(options);
    req.on('response', (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      resolve({ ok: status >= 200 && status < 400, reason: `HTTP ${status}` });
      req.destroy();
    });
    req.on('timeout', () => {
      resolve(timedOut());
      req.destroy();
    });
    req.on('error', (err) => resolve({ ok: false, reason: err.message }));
    req.end();
  });
}

function tcpProbe(p: Extract<AppProbe, { kind: 'tcp' }>, podIp: string, timedOut: () => ProbeResult): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const s = net.connect({ host: p.host ?? podIp, port: p.port });
    const timer = setTimeout(() => {
      resolve(timedOut());
      s.destroy();
    }, p.timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      resolve({ ok: true, reason: 'connected' });
      s.destroy();
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: `connect ${(err as NodeJS.ErrnoException).code ?? err.message}` });
    });
  });
}

const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

/** `grpc.health.v1.Health/Check` over h2c, its two tiny messages encoded by hand (no protobuf library in the sidecar's path). */
function grpcProbe(p: Extract<AppProbe, { kind: 'grpc' }>, podIp: string, timedOut: () => ProbeResult): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      session.destroy();
      resolve(r);
    };
    const authority = net.isIPv6(podIp) ? `[${podIp}]:${p.port}` : `${podIp}:${p.port}`;
    const session = http2.connect(`http://${authority}`);
    const timer = setTimeout(() => finish(timedOut()), p.timeoutMs);
    session.on('error', (err) => finish({ ok: false, reason: `connect ${(err as NodeJS.ErrnoException).code ?? err.message}` }));
    const service = Buffer.from(p.service, 'utf8');
    // HealthCheckRequest { string service = 1; }
    const message = service.length ? Buffer.concat([Buffer.from([0x0a]), varint(service.length), service]) : Buffer.alloc(0);
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), message]);
    frame.writeUInt32BE(message.length, 1);
    const stream = session.request({ ':method': 'POST', ':path': '/grpc.health.v1.Health/Check', 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    let grpcStatus: string | undefined;
    stream.on('response', (h) => (grpcStatus = h['grpc-status'] as string | undefined));
    stream.on('trailers', (t) => (grpcStatus = (t['grpc-status'] as string | undefined) ?? grpcStatus));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', () => undefined);
    stream.on('close', () => {
      if (grpcStatus !== '0') return finish({ ok: false, reason: `grpc-status ${grpcStatus ?? 'missing'}` });
      // HealthCheckResponse { ServingStatus status = 1; } after the 5-byte gRPC prefix.
      const body = Buffer.concat(chunks).subarray(5);
      const status = body[0] === 0x08 ? body[1] ?? 0 : 0;
      finish({ ok: status === 1, reason: SERVING_STATUS[status] ?? `status ${status}` });
    });
    stream.end(frame);
  });
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}
