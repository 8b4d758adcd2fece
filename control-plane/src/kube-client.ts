/**
 * A small Kubernetes API client: `@kubernetes/client-node` loads the configuration (a kubeconfig
 * file, or the pod's in-cluster service account) and applies its credentials to every request,
 * which re-reads a rotated service-account token; the requests themselves go over one keep-alive
 * HTTPS agent, so a control plane holds a handful of connections to the API server, not one per call.
 * Watches are streamed line by line (`?watch=true`), each with a server-side timeout.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { createInterface } from 'node:readline';

/** The API server answered with an error status (or the request never got an answer: `status` 0). */
export class KubeApiError extends Error {
  readonly code = 'KUBE_API_ERROR';
  constructor(
    readonly method: string,
    readonly path: string,
    /** HTTP status; 0 when the request failed before an answer (connection refused, timeout). */
    readonly status: number,
    /** The `reason` of the API server's Status object (`NotFound`, `Conflict`, `Expired`, `Forbidden`, …). */
    readonly reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${method} ${path}: ${status ? `${status} ${reason}: ` : ''}${message}`, options);
    this.name = 'KubeApiError';
  }
}

export interface KubeClientOptions {
  /** A kubeconfig file; absent: the in-cluster service account (KUBERNETES_SERVICE_HOST and its token). */
  readonly kubeconfig?: string;
  /** Per request (not per watch): default 30 s. */
  readonly timeoutMs?: number;
}

/** One event of a watch stream. */
export interface WatchEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  readonly object: Record<string, unknown>;
}

export interface RequestOptions {
  readonly query?: Readonly<Record<string, string | number | boolean | undefined>>;
  readonly body?: unknown;
  /** Default `application/json`; `application/merge-patch+json` for merge patches. */
  readonly contentType?: string;
}

interface KubeConfigLike {
  getCurrentCluster(): { server: string } | null;
  applyToHTTPSOptions(opts: https.RequestOptions): Promise<void>;
}

export class KubeClient {
  private readonly server: URL;
  private readonly agent: http.Agent;
  private closed = false;

  private constructor(private readonly config: KubeConfigLike, tls: https.AgentOptions, private readonly timeoutMs: number) {
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    this.server = new URL(cluster.server);
    this.agent = this.server.protocol === 'http:'
      ? new http.Agent({ keepAlive: true, maxSockets: 16 })
      : new https.Agent({ ...tls, keepAlive: true, maxSockets: 16 });
  }

  /** Loads the configuration and checks nothing yet: the first request tells whether the server answers. */
  static async load(opts: KubeClientOptions = {}): Promise<KubeClient> {
    // client-node is an ES module; Node 20 loads it from CommonJS through import().
    const k8s = await import('@kubernetes/client-node');
    const kc = new k8s.KubeConfig();
    if (opts.kubeconfig !== undefined) kc.loadFromFile(opts.kubeconfig);
    else kc.loadFromCluster();
    const probe: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(probe);
    const tls: https.AgentOptions = {};
    if (probe.ca) tls.ca = probe.ca;
    if (probe.cert) tls.cert = probe.cert;
    if (probe.key) tls.key = probe.key;
    if (probe.rejectUnauthorized !== undefined) tls.rejectUnauthorized = probe.rejectUnauthorized;
    return new KubeClient(kc, tls, opts.timeoutMs ?? 30_000);
  }

  get serverUrl(): string {
    return this.server.origin;
  }

  /** One request; resolves with the decoded JSON body of a 2xx answer, throws KubeApiError otherwise. */
  async request<T = Record<string, unknown>>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, opts, this.timeoutMs);
    const text = await readAll(res);
    const status = res.statusCode ?? 0;
    if (status < 200 || status > 299) throw apiError(method, path, status, text);
    try {
      return (text ? JSON.parse(text) : {}) as T;
    } catch (err) {
      throw new KubeApiError(method, path, status, 'BadResponse', 'the answer is not JSON', { cause: err });
    }
  }

  /**
   * Streams a watch until the server ends it (its `timeoutSeconds`), `signal` aborts it (resolves),
   * or it fails (rejects with KubeApiError). `onEvent` is called for each decoded event in order.
   * A watch that receives nothing (no event, no bookmark: the API server sends one about every
   * minute when asked) for `idleMs` is taken for a dead connection and fails, so a path that died
   * without a reset is noticed in minutes, not when TCP keepalive gives up.
   */
  async watch(path: string, query: RequestOptions['query'], onEvent: (e: WatchEvent) => void, signal: AbortSignal, idleMs = 150_000): Promise<void> {
    if (signal.aborted) return;
    const res = await this.send('GET', path, { query: { ...query, watch: true } }, 0, signal);
    const status = res.statusCode ?? 0;
    if (status !== 200) throw apiError('GET', path, status, await readAll(res));
    await new Promise<void>((resolve, reject) => {
      const lines = createInterface({ input: res, crlfDelay: Infinity });
      let failed = false;
      const fail = (err: unknown): void => {
        if (failed) return;
        failed = true;
        clearTimeout(idle);
        lines.close();
        res.destroy();
        reject(err instanceof KubeApiError ? err : new KubeApiError('GET', path, 0, 'StreamFailed', String((err as Error)?.message ?? err), { cause: err }));
      };
      let idle: NodeJS.Timeout | undefined;
      const arm = (): void => {
        clearTimeout(idle);
        idle = setTimeout(() => fail(new KubeApiError('GET', path, 0, 'Idle', `nothing received for ${idleMs} ms: the connection is taken for dead`)), idleMs);
        idle.unref();
      };
      arm();
      lines.on('line', (line) => {
        arm();
        if (failed || !line.trim()) return;
        let event: WatchEvent;
        try {
          event = JSON.parse(line) as WatchEvent;
        } catch (err) {
          fail(new KubeApiError('GET', path, 200, 'BadWatchEvent', `undecodable watch event: ${line.slice(0, 120)}`, { cause: err }));
          return;
        }
        try {
          onEvent(event);
        } catch (err) {
          fail(err);
        }
      });
      // readline re-emits its input's errors (a reset connection): one handler for both.
      const onError = (err: Error): void => (signal.aborted ? resolve() : fail(err));
      res.on('error', onError);
      lines.on('error', onError);
      lines.on('close', () => {
        clearTimeout(idle);
        if (!failed) resolve();
      });
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.agent.destroy();
  }

  private async send(method: string, path: string, opts: RequestOptions, timeoutMs: number, signal?: AbortSignal): Promise<http.IncomingMessage> {
    const url = new URL(path, this.server);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const auth: https.RequestOptions = {};
    await this.config.applyToHTTPSOptions(auth);
    const headers: Record<string, string> = { accept: 'application/json' };
    for (const [k, v] of Object.entries(auth.headers ?? {})) if (typeof v === 'string') headers[k] = v;
    if (auth.auth) headers.authorization = `Basic ${Buffer.from(auth.auth).toString('base64')}`;
    const body = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    if (body) {
      headers['content-type'] = opts.contentType ?? 'application/json';
      headers['content-length'] = String(body.length);
    }
    const lib = url.protocol === 'http:' ? http : https;
    return await new Promise<http.IncomingMessage>((resolve, reject) => {
      const req = lib.request(url, { method, headers, agent: this.agent, ...(signal ? { signal } : {}) }, resolve);
      if (timeoutMs > 0) {
        req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      }
      req.on('error', (err) => reject(new KubeApiError(method, url.pathname, 0, 'Unreachable', err.message, { cause: err })));
      req.end(body);
    });
  }
}

async function readAll(res: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function apiError(method: string, path: string, status: number, text: string): KubeApiError {
  let reason = http.STATUS_CODES[status] ?? 'Error';
  let message = text.slice(0, 500);
  try {
    const s = JSON.parse(text) as { reason?: string; message?: string };
    if (s.reason) reason = s.reason;
    if (s.message) message = s.message;
  } catch {
    // not a Status object: keep the text
  }
  return new KubeApiError(method, path, status, reason, message);
}
