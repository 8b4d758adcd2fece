/**
 * Request mirroring (Envoy's `request_mirror_policies`): a fire-and-forget copy of a request to a
 * shadow cluster. The copy's response is read and discarded; its errors and timeouts are counted
 * and never reach the primary request, which neither waits for the copy nor shares a timer, a
 * pool slot or a retry with it. A body is replayed from the request's kept copy once it has fully
 * arrived (so a slow shadow never pauses the primary upload); a body larger than the buffer is not
 * mirrored. At most `maxInFlight` copies are outstanding per process: beyond that a copy is
 * dropped and counted, so a slow or hung shadow cannot grow memory without bound.
 */
import type { CallResult } from './balancer';
import type { ClusterPicker, UpstreamPick } from './cluster-balancer';
import type { BodyFraming } from './headers-http';
import type { Http1Endpoint } from './upstream-http1';

/** Where one copy goes and what it carries. */
export interface MirrorRequest {
  /** The shadow endpoint's pooled connections. */
  readonly upstream: Http1Endpoint;
  /** The whole request head, `Host` already suffixed (`shadowHost`; headers-http.ts `requestHead`). */
  readonly head: string;
  readonly framing: BodyFraming;
  /** The whole body (empty for none). */
  readonly body: readonly Buffer[];
  /** The copy is abandoned after this long (the route timeout, or `DEFAULT_MIRROR_TIMEOUT_MS`). */
  readonly timeoutMs: number;
  /** Completes the shadow endpoint's balancer pick with the copy's outcome. */
  readonly done?: (result: CallResult) => void;
}

export interface MirrorStats {
  /** Copies sent. */
  sent: number;
  /** Copies dropped because `maxInFlight` were outstanding. */
  dropped: number;
  /** Copies that failed (connect error, reset, timeout); their responses are never seen. */
  failed: number;
  /** Requests not mirrored because the body outgrew the buffer. */
  bodyTooLarge: number;
  /** Copies not sent: the shadow cluster is unknown or has no healthy endpoint. */
  noUpstream: number;
}

/** Envoy's default route timeout, for copies of requests whose route has none. */
export const DEFAULT_MIRROR_TIMEOUT_MS = 15_000;
export const DEFAULT_MAX_MIRRORS_IN_FLIGHT = 256;

/** The copies in flight and their counters; one per process by default (`SHARED_MIRRORS`). */
export class RequestMirrors {
  readonly stats: MirrorStats = { sent: 0, dropped: 0, failed: 0, bodyTooLarge: 0, noUpstream: 0 };
  private inFlight = 0;

  constructor(readonly maxInFlight = DEFAULT_MAX_MIRRORS_IN_FLIGHT) {}

  /** Copies outstanding now. */
  get active(): number {
    return this.inFlight;
  }

  /** Whether a copy may start now (counts a drop when not). */
  admit(): boolean {
    if (this.inFlight < this.maxInFlight) return true;
    this.stats.dropped++;
    return false;
  }

  /**
   * Counts one copy as sent and in flight, and returns the function that ends it (call once; later
   * calls are ignored): a result other than a response counts as failed, and `done` (the shadow
   * pick) is told. Shared by the HTTP/1 copies (`send`) and the HTTP/2 ones (mirror-h2.ts).
   */
  begin(done?: (result: CallResult) => void): (result: CallResult) => void {
    this.inFlight++;
    this.stats.sent++;
    let over = false;
    return (result) => {
      if (over) return;
      over = true;
      this.inFlight--;
      if (result.kind !== 'response') this.stats.failed++;
      done?.(result);
    };
  }

  /** Sends one copy. Returns at once; never throws; nothing of the copy reaches the caller. */
  send(m: MirrorRequest): void {
    const finish = this.begin(m.done);
    let over = false;
    let connected = false;
    let status = 502;
    const end = (result: CallResult): void => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      if (result.kind !== 'response') up.abort();
      finish(result);
    };
    const timer = setTimeout(() => end({ kind: 'timeout' }), m.timeoutMs);
    const up = m.upstream.request(
      m.head,
      {
        onConnect: () => (connected = true),
        onError: () => end(connected ? { kind: 'reset' } : { kind: 'connect-failure' }),
        onResponse: (s) => (status = s),
        onData: () => undefined,
        onEnd: () => end({ kind: 'response', status }),
      },
      m.framing,
      false,
      0,
    );
    for (const chunk of m.body) up.write(chunk);
    up.end();
  }
}

/**
 * The shadow endpoint for one copy to `cluster`, or `undefined` when there is none: the cluster is
 * unknown or has no healthy endpoint (counted `noUpstream`), or `maxInFlight` copies are out
 * (counted `dropped`; the pick is released).
 */
export function pickShadow(mirrors: RequestMirrors, clusters: ReadonlyMap<string, { readonly balancer: ClusterPicker }>, cluster: string): UpstreamPick | undefined {
  const pick = clusters.get(cluster)?.balancer.pick();
  if (!pick) {
    mirrors.stats.noUpstream++;
    return undefined;
  }
  if (!mirrors.admit()) {
    pick.done({ kind: 'cancelled' });
    return undefined;
  }
  return pick;
}

/** The process-wide mirrors used when a listener is given none. */
export const SHARED_MIRRORS = new RequestMirrors();

/** Envoy's shadow host: `-shadow` appended to the host name, before any port (`a:80` → `a-shadow:80`). */
export function shadowHost(host: string): string {
  const colon = host.lastIndexOf(':');
  const hasPort = colon > host.lastIndexOf(']') && /^\d+$/.test(host.slice(colon + 1));
  return hasPort ? `${host.slice(0, colon)}-shadow${host.slice(colon)}` : `${host}-shadow`;
}
