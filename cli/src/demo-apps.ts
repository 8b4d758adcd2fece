/**
 * The demo's applications, run inside the `weft demo` process, each on its pod's address:
 * a backend answering who it is, and a frontend that calls the backend Service through its own
 * sidecar's outbound listener — the one thing a meshed app has to know in local mode, which has
 * no iptables to capture its traffic.
 */
import { createServer, request, Agent, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { CliError } from './errors';

export interface DemoApp {
  /** e.g. `backend-v1 app` */
  readonly name: string;
  /** `ip:port` it listens on. */
  readonly address: string;
  /** Stops accepting and waits for open requests; idempotent. */
  close(): Promise<void>;
  /** Drops every connection now; idempotent. */
  destroy(): void;
}

/** Listens on ip:port; an address in use becomes one CliError line with a hint. */
function listen(server: Server, ip: string, port: number, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      const why =
        err.code === 'EADDRINUSE'
          ? `${ip}:${port} is already in use (is another demo running? try --base-ip 127.0.11)`
          : err.code === 'EADDRNOTAVAIL'
            ? `${ip} is not an address of this machine (loopback 127.x.y.z works on Linux)`
            : err.message;
      reject(new CliError(`${name} cannot listen: ${why}`, { cause: err }));
    });
    server.listen(port, ip, () => resolve());
  });
}

function wrap(server: Server, name: string, address: string, agent?: Agent): DemoApp {
  let closing: Promise<void> | undefined;
  return {
    name,
    address,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        agent?.destroy();
      })),
    destroy: () => {
      server.closeAllConnections();
      server.close();
      agent?.destroy();
    },
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Starts a backend on ip:port answering every request with
 * `{"service":"backend","version":<version>,"pod":<pod>}`. Resolves once listening.
 */
export async function startBackend(opts: { ip: string; port: number; version: string; pod: string }): Promise<DemoApp> {
  const server = createServer((req, res) => {
    req.resume();
    sendJson(res, 200, { service: 'backend', version: opts.version, pod: opts.pod });
  });
  const name = `${opts.pod} app`;
  await listen(server, opts.ip, opts.port, name);
  return wrap(server, name, `${opts.ip}:${opts.port}`);
}

/**
 * Starts the frontend on ip:port. Each request makes one call to `http://<upstreamHost>/` sent
 * to its sidecar's outbound listener (`sidecar`, with `Host: <upstreamHost>`), and the frontend
 * answers with the backend's status and body. A failed call is a 502 with a JSON `error`.
 */
export async function startFrontend(opts: {
  ip: string;
  port: number;
  pod: string;
  sidecar: { ip: string; port: number };
  upstreamHost: string;
  timeoutMs: number;
}): Promise<DemoApp> {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const upstream = request(
      {
        host: opts.sidecar.ip,
        port: opts.sidecar.port,
        path: '/',
        method: 'GET',
        agent,
        timeout: opts.timeoutMs,
        // What an app does for one trace across services (docs/tracing.md): forward the trace headers.
        headers: { host: opts.upstreamHost, ...forwardedTraceHeaders(req) },
      },
      (up) => {
        const chunks: Buffer[] = [];
        up.on('data', (c: Buffer) => chunks.push(c));
        up.on('end', () => {
          const body = Buffer.concat(chunks);
          res.writeHead(up.statusCode ?? 502, {
            'content-type': up.headers['content-type'] ?? 'application/octet-stream',
            'content-length': body.length,
          });
          res.end(body);
        });
        up.on('error', (err) => (res.headersSent ? res.destroy() : sendJson(res, 502, { service: 'frontend', error: err.message })));
      },
    );
    upstream.on('timeout', () => upstream.destroy(new Error(`no answer from ${opts.upstreamHost} in ${opts.timeoutMs} ms`)));
    upstream.on('error', (err: NodeJS.ErrnoException) => {
      if (res.headersSent) res.destroy();
      else sendJson(res, 502, { service: 'frontend', error: err.code ?? err.message });
    });
    upstream.end();
  });
  const name = `${opts.pod} app`;
  await listen(server, opts.ip, opts.port, name);
  return wrap(server, name, `${opts.ip}:${opts.port}`, agent);
}

/** The headers an app copies from the request it serves onto the calls it makes (docs/tracing.md). */
export const TRACE_HEADERS = ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags', 'x-request-id'] as const;

function forwardedTraceHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of TRACE_HEADERS) {
    const v = req.headers[h];
    if (typeof v === 'string') out[h] = v;
  }
  return out;
}

