/**
 * Upstream connection pools: one keep-alive `http.Agent` per endpoint (`address:port`), shared by
 * every listener and reused across requests and config versions. Endpoints that leave the config
 * are retired gracefully: idle sockets close at once, busy ones when their request completes.
 */
import http from 'node:http';
import type { Socket } from 'node:net';

export interface UpstreamPoolOptions {
  /** Most sockets per endpoint (default: unlimited, as Envoy's HTTP/1 pool without circuit breakers). */
  readonly maxSockets?: number;
  /** Most idle sockets kept per endpoint (default 256). */
  readonly maxFreeSockets?: number;
  /**
   * An idle socket is closed after this long (default 4000 ms, below Node's 5 s server keep-alive,
   * so we usually close first instead of racing the upstream's close with a new request).
   */
  readonly idleTimeoutMs?: number;
}

/** The pool key of an endpoint: `address:port`, IPv6 addresses bracketed. */
export function endpointKey(endpoint: { readonly address: string; readonly port: number }): string {
  return endpoint.address.includes(':') ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`;
}

/**
 * Owns upstream connections. All methods are synchronous. After `close()` or `destroy()`, `agentFor`
 * still works but hands out a non-pooling agent, so a request racing shutdown is served, not failed.
 */
export class UpstreamPool {
  private readonly agents = new Map<string, http.Agent>();
  private readonly closeHooks: ((how: 'close' | 'destroy') => void)[] = [];
  private closed = false;

  constructor(private readonly options: UpstreamPoolOptions = {}) {}

  /**
   * The agent for `endpoint`, created on first use and reused afterwards. With
   * `maxRequestsPerConnection` > 0 (a cluster's limit), a separate agent whose connections close
   * after that many requests (pool key `address:port#N`).
   */
  agentFor(endpoint: { readonly address: string; readonly port: number }, maxRequestsPerConnection = 0): http.Agent {
    const key = maxRequestsPerConnection > 0 ? `${endpointKey(endpoint)}#${maxRequestsPerConnection}` : endpointKey(endpoint);
    let agent = this.agents.get(key);
    if (!agent) {
      if (this.closed) return new http.Agent({ keepAlive: false });
      const options: http.AgentOptions = {
        keepAlive: true,
        maxSockets: this.options.maxSockets ?? Infinity,
        maxFreeSockets: this.options.maxFreeSockets ?? 256,
        timeout: this.options.idleTimeoutMs ?? 4000,
        scheduling: 'lifo',
      };
      agent = maxRequestsPerConnection > 0 ? new CappedAgent(options, maxRequestsPerConnection) : new http.Agent(options);
      this.agents.set(key, agent);
    }
    return agent;
  }

  /** Runs `fn` once when the pool is closed or destroyed, told which (state tied to the pool's lifetime). */
  onClose(fn: (how: 'close' | 'destroy') => void): void {
    this.closeHooks.push(fn);
  }

  /** Keys of the endpoints that currently have an agent. */
  keys(): string[] {
    return [...this.agents.keys()];
  }

  /**
   * Retires every agent whose endpoint is not in `keep` (see `endpointKey`; an agent keyed
   * `address:port#N` belongs to `address:port`). In-flight requests finish.
   */
  retain(keep: Iterable<string>): void {
    const wanted = new Set(keep);
    for (const [key, agent] of this.agents) {
      const hash = key.lastIndexOf('#');
      if (wanted.has(hash < 0 ? key : key.slice(0, hash))) continue;
      this.agents.delete(key);
      retire(agent);
    }
  }

  /** Graceful: idle sockets close now, busy ones after their response. Idempotent. */
  close(): void {
    this.closed = true;
    this.runCloseHooks('close');
    for (const agent of this.agents.values()) retire(agent);
    this.agents.clear();
  }

  /** Aborts every upstream connection, in flight or idle. Idempotent. */
  destroy(): void {
    this.closed = true;
    this.runCloseHooks('destroy');
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
  }

  private runCloseHooks(how: 'close' | 'destroy'): void {
    for (const fn of this.closeHooks.splice(0)) fn(how);
  }
}

/**
 * An agent whose connections carry at most `max` requests each (Envoy's
 * `max_requests_per_connection`). Node's agent asks `keepSocketAlive` each time a request frees a
 * socket; saying no closes it instead of pooling it.
 */
class CappedAgent extends http.Agent {
  private readonly served = new WeakMap<Socket, number>();

  constructor(
    options: http.AgentOptions,
    private readonly max: number,
  ) {
    super(options);
  }

  override keepSocketAlive(socket: Socket): boolean {
    const n = (this.served.get(socket) ?? 0) + 1;
    this.served.set(socket, n);
    if (n >= this.max) return false;
    // Node's implementation returns true; its type says void.
    return (super.keepSocketAlive(socket) as unknown) !== false;
  }
}

/**
 * Stops `agent` pooling. Node's Agent consults `keepAlive` each time a socket is freed, so turning it
 * off makes busy sockets close after their current request rather than return to the pool.
 */
function retire(agent: http.Agent): void {
  (agent as http.Agent & { keepAlive: boolean }).keepAlive = false;
  for (const sockets of Object.values(agent.freeSockets)) {
    for (const socket of (sockets ?? []) as Socket[]) socket.destroy();
  }
}
