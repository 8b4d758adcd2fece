/**
 * Request mirroring on the HTTP/2 path: a fire-and-forget copy of a stream to a shadow cluster, as
 * a stream on that endpoint's shared upstream session (upstream-h2.ts). Same rules as HTTP/1
 * (mirror-http.ts): `:authority` suffixed `-shadow`, sent once the whole request body has arrived
 * (from the kept copy; a larger body is not mirrored), its own timer, no retry, no pool-limits slot,
 * its response read and discarded, and counted in the same `RequestMirrors` (sent, dropped, failed,
 * bodyTooLarge, noUpstream; at most `maxInFlight` at once). Nothing of a copy reaches the primary.
 */
import type { OutgoingHttpHeaders } from 'node:http2';
import type { H2ClientStream } from './h2-streams';
import { H2_NO_ERROR } from './h2wire-errors';
import { TARGET_PORT_HEADER, type ListenerDirection, type MirrorPolicy } from './config';
import { cancelUpstream } from './forward-h2';
import { pickShadow, shadowHost, type RequestMirrors } from './mirror-http';
import type { ProxySnapshot } from './proxy-snapshot';
import type { UpstreamH2Sessions } from './upstream-h2';

export interface H2MirrorContext {
  readonly mirrors: RequestMirrors;
  readonly sessions: UpstreamH2Sessions;
  readonly snap: ProxySnapshot;
  readonly direction: ListenerDirection;
  /** Each copy is abandoned after this long. */
  readonly timeoutMs: number;
}

/**
 * Sends one copy per policy in `copies` of a request whose upstream headers were `primary`
 * (pseudo-headers included) and whose body is `body` (`undefined`: it outgrew the buffer). Returns
 * at once; never throws.
 */
export function mirrorH2(ctx: H2MirrorContext, copies: readonly MirrorPolicy[], primary: OutgoingHttpHeaders, body: readonly Buffer[] | undefined): void {
  if (!body) {
    ctx.mirrors.stats.bodyTooLarge += copies.length;
    return;
  }
  for (const m of copies) {
    const pick = pickShadow(ctx.mirrors, ctx.snap.clusters, m.cluster);
    if (!pick) continue;
    const headers: OutgoingHttpHeaders = { ...primary, ':authority': shadowHost(String(primary[':authority'] ?? '')) };
    delete headers[TARGET_PORT_HEADER];
    if (ctx.direction === 'outbound' && pick.endpoint.targetPort !== undefined) headers[TARGET_PORT_HEADER] = String(pick.endpoint.targetPort);
    const end = ctx.mirrors.begin((result) => pick.done(result));
    const upstream = ctx.sessions.sessionFor(pick.endpoint, ctx.snap.clusters.get(m.cluster)?.cluster.connectTimeoutMs ?? 0);
    let up: H2ClientStream;
    try {
      up = upstream.session.request(headers, { endStream: false });
    } catch {
      end({ kind: 'connect-failure' });
      continue;
    }
    let status = 0;
    const timer = setTimeout(() => {
      end({ kind: 'timeout' });
      cancelUpstream(up);
    }, ctx.timeoutMs);
    up.once('response', (h) => {
      status = Number(h[':status']);
    });
    up.resume();
    up.once('close', () => {
      clearTimeout(timer);
      if (status && up.rstCode === H2_NO_ERROR) end({ kind: 'response', status });
      else end(upstream.connected() ? { kind: 'reset' } : { kind: 'connect-failure' });
    });
    for (const chunk of body) up.write(chunk);
    up.end();
  }
}
