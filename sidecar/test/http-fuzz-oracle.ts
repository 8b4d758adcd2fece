/**
 * The fuzzer's oracle: runs one generated case (http-fuzz-gen.ts) against a real `HttpProxyListener`
 * in front of a raw recording upstream (http-fuzz-upstream.ts), over real sockets, and judges what
 * happened against the reference parser (http-fuzz-ref.ts). The sidecar is a black box: only bytes
 * on the client socket and bytes the upstream received are looked at.
 *
 * Hard failures (a case fails):
 * - `hang`: the reference says the bytes hold complete requests (or a refusal), but the client got
 *   neither every answer nor a close within the bound;
 * - `smuggled`: a request reached the upstream that the reference did not accept — a refused
 *   request, bytes after a refusal, or a request the client never sent;
 * - `leaked-bytes`: a refused request's bytes arrived in one write, yet some reached the upstream;
 * - `kept-open`: after the sidecar refused a request the connection stayed open, or answered more;
 * - `mismatch`: a forwarded request differs from the client's (method, normalized target, headers
 *   that must pass through, body), or the upstream could not frame what the sidecar sent;
 * - `lost-response`: the connection closed before the answer to a request the sidecar accepted;
 * - `refused-valid`, `answered-wrong`: a request the reference accepts was refused or mis-answered.
 * Soft notes (logged, not failed): a refusal with another 4xx/5xx than the reference's.
 */
import net from 'node:net';
import type { HttpLimits } from '../src/http-limits';
import { cluster, listener, proxyConfig, route, routeTable, vhost } from './fixtures';
import type { FuzzCase } from './http-fuzz-gen';
import { judgeRequest, parseStream, type RefMessage, type RefParse, type Verdict } from './http-fuzz-ref';
import { RawUpstream, partialBytes, type UpstreamMessage } from './http-fuzz-upstream';
import { startStrictProxy, type StrictProxy } from './http-safety-fixtures';

/** The limits every fuzz listener runs with: small, so limit cases are cheap; timeouts short. */
export const FUZZ_LIMITS: Partial<HttpLimits> = {
  maxHeaderBytes: 4096,
  maxHeaderCount: 30,
  headersTimeoutMs: 2000,
  idleTimeoutMs: 2500,
  keepAliveTimeoutMs: 5000,
  timeoutCheckIntervalMs: 200,
};
export const FUZZ_REF_LIMITS = { maxHeaderBytes: 4096, maxHeaderCount: 30 };

/** How long a client waits for answers the reference says are due. */
const HANG_BOUND_MS = 3500;
/** How long a client waits when the bytes end inside a request (nothing more is due). */
const INCOMPLETE_WAIT_MS = 150;

export interface FuzzTarget {
  readonly direction: 'outbound' | 'inbound';
  readonly proxy: StrictProxy;
  readonly upstream: RawUpstream;
  close(): Promise<void>;
}

export async function startFuzzTarget(direction: 'outbound' | 'inbound'): Promise<FuzzTarget> {
  const upstream = await RawUpstream.start();
  const config = proxyConfig({
    routeTables: [routeTable('outbound', [vhost('all', ['*'], [route('all', 'app')])])],
    clusters: [cluster('app')],
    endpoints: { app: [{ address: '127.0.0.1', port: upstream.port, weight: 1, healthy: true }] },
  });
  const spec = direction === 'outbound' ? listener('outbound') : listener('inbound', { direction: 'inbound' });
  const proxy = await startStrictProxy(config, spec, FUZZ_LIMITS);
  return {
    direction,
    proxy,
    upstream,
    close: async () => {
      await proxy.close();
      await upstream.close();
    },
  };
}

export interface Finding {
  readonly kind: 'hang' | 'lost-response' | 'smuggled' | 'leaked-bytes' | 'kept-open' | 'mismatch' | 'refused-valid' | 'answered-wrong';
  readonly detail: string;
}

/**
 * Bugs found by this fuzzer whose fix lies outside the files the fuzzer's owner may change (see
 * docs/http-safety.md, "Fuzzing"). A case whose findings are explained by one is reported under its
 * id instead of failing, and its target is rebuilt (the bug can leave an upstream connection
 * poisoned). Each has a `todo` test with its minimal vector in http-smuggling.test.ts; delete the
 * entry once the fix lands and the fuzzer holds it.
 */
export interface KnownIssue {
  readonly id: string;
  readonly summary: string;
  matches(judged: readonly RefMessage[], verdicts: readonly Verdict[], ref: RefParse, bytes: string): boolean;
  /** Only findings of these kinds are explained (default: any). */
  readonly kinds?: readonly Finding['kind'][];
  /**
   * An uncaught exception this issue throws (matched against its stack). Cases that match such an
   * issue are skipped, not run: under node:test an uncaught exception fails whatever test is running.
   */
  readonly uncaught?: RegExp;
}

// Bugs the fuzzer found that are not fixed yet (each with a `todo` test in http-smuggling.test.ts).
// The seven found so far are fixed; see docs/http-safety.md, "Fuzzing".
export const KNOWN_ISSUES: readonly KnownIssue[] = [];


export interface CaseResult {
  readonly findings: Finding[];
  /** The known issue (KNOWN_ISSUES) that explains the findings, which are then left out. */
  readonly known?: string;
  readonly notes: string[];
  /** The statuses the client read, in order (interim 1xx left out). */
  readonly statuses: number[];
  readonly ref: RefParse;
}

interface ClientResponse {
  readonly status: number;
  /** `x-fuzz-up`: the upstream wrote it. */
  readonly upstream: number | undefined;
  readonly close: boolean;
}

interface ClientResult {
  readonly responses: ClientResponse[];
  readonly closed: boolean;
  readonly timedOut: boolean;
  readonly raw: string;
  readonly garbage: string | undefined;
}

/** Reads responses from `raw`; `methods[i]` is the method of the i-th request (HEAD has no body). */
function parseResponses(raw: string, methods: readonly string[]): { responses: ClientResponse[]; garbage?: string } {
  const responses: ClientResponse[] = [];
  let pos = 0;
  while (pos < raw.length) {
    const head = raw.indexOf('\r\n\r\n', pos);
    if (head < 0) break;
    const lines = raw.slice(pos, head).split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3})/.exec(lines[0]!);
    if (!m) return { responses, garbage: raw.slice(pos, pos + 80) };
    const status = Number(m[1]);
    const fields = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const c = l.indexOf(':');
      fields.set(l.slice(0, c).toLowerCase(), l.slice(c + 1).trim());
    }
    let end = head + 4;
    if (status >= 200 && methods[responses.length] !== 'HEAD' && status !== 204 && status !== 304) {
      if (fields.get('transfer-encoding')?.toLowerCase() === 'chunked') {
        const last = raw.indexOf('\r\n0\r\n\r\n', end - 2);
        if (last < 0) break;
        end = last + 7;
      } else {
        end += Number(fields.get('content-length') ?? 0);
        if (end > raw.length) break;
      }
    }
    pos = end;
    if (status < 200) continue; // 100 Continue and other interim responses
    const up = fields.get('x-fuzz-up');
    responses.push({ status, upstream: up === undefined ? undefined : Number(up), close: /(^|,)\s*close\s*(,|$)/i.test(fields.get('connection') ?? '') });
  }
  return { responses };
}

/**
 * Writes the case on a fresh connection and reads until `due` responses arrived (and, with
 * `closeDue`, the connection closed), the server closed it, or `waitMs` passed.
 */
function exchange(port: number, c: FuzzCase, methods: readonly string[], due: number, closeDue: boolean, waitMs: number): Promise<ClientResult> {
  return new Promise((resolve) => {
    let raw = '';
    let timedOut = false;
    let finished = false;
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    const parts = [...c.writes];
    let timer: NodeJS.Timeout | undefined;
    let gap: NodeJS.Timeout | undefined;
    const done = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      clearTimeout(gap);
      socket.destroy();
    };
    socket.on('connect', () => {
      const next = (): void => {
        if (parts.length === 0 || socket.destroyed) return;
        socket.write(Buffer.from(parts.shift()!, 'latin1'));
        if (parts.length) gap = setTimeout(next, c.gapMs);
      };
      next();
    });
    const check = (): void => {
      const { responses } = parseResponses(raw, methods);
      // Extra answers are looked for a little longer than the due ones.
      if (!closeDue && responses.length >= due && parts.length === 0) setTimeout(done, 15);
    };
    socket.on('data', (chunk: Buffer) => {
      raw += chunk.toString('latin1');
      check();
    });
    socket.on('error', () => undefined);
    timer = setTimeout(() => {
      timedOut = true;
      done();
    }, waitMs);
    if (due === 0 && !closeDue) setTimeout(() => (parts.length === 0 ? done() : undefined), waitMs);
    socket.on('close', () => {
      const closedByPeer = !finished;
      done();
      const parsed = parseResponses(raw, methods);
      resolve({ responses: parsed.responses, closed: closedByPeer, timedOut, raw, garbage: parsed.garbage });
    });
  });
}

const DROP_DUPLICATES = new Set([
  'content-type', 'content-length', 'user-agent', 'referer', 'host', 'authorization', 'proxy-authorization',
  'if-modified-since', 'if-unmodified-since', 'from', 'location', 'max-forwards', 'retry-after', 'etag',
  'last-modified', 'server', 'age', 'expires',
]);
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
/** Set or rewritten by the proxy on purpose (docs/http-safety.md, headers-http.ts's contract). */
const PROXY_SET = new Set(['expect', 'x-weft-target-port', 'x-forwarded-for', 'x-forwarded-proto', 'x-request-id', 'content-length', 'host']);

/**
 * The field values a recipient that combines repeated fields (as the sidecar documents: RFC 9110
 * §5.3 list fields joined with `, `, `cookie` with `; `, singleton fields keep the first) reads.
 */
function combined(headers: readonly (readonly [string, string])[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const [n, v] of headers) {
    const name = n.toLowerCase();
    const prior = out.get(name);
    if (prior === undefined) out.set(name, v);
    else if (name === 'set-cookie') out.set(name, `${prior}\n${v}`);
    else if (!DROP_DUPLICATES.has(name)) out.set(name, `${prior}${name === 'cookie' ? '; ' : ', '}${v}`);
  }
  // A recipient reads a field value without surrounding whitespace (joining empty values leaves some).
  for (const [name, v] of out) out.set(name, v.replace(/^[ \t]+|[ \t]+$/g, ''));
  return out;
}

/** How `got` (what the upstream framed) differs from the client's `sent`, forwarded as `verdict`. */
function compareForwarded(sent: RefMessage, got: RefMessage, verdict: Extract<Verdict, { kind: 'forward' }>): string[] {
  const path = verdict.path;
  const diffs: string[] = [];
  if (got.method !== sent.method) diffs.push(`method ${got.method} != ${sent.method}`);
  if (got.target !== path) diffs.push(`target ${JSON.stringify(got.target)} != normalized ${JSON.stringify(path)}`);
  if (got.body !== sent.body) diffs.push(`body of ${got.body.length} bytes != ${sent.body.length} sent`);
  const want = combined(sent.headers);
  const have = combined(got.headers);
  const named = new Set((want.get('connection') ?? '').toLowerCase().split(',').map((t) => t.trim()));
  for (const [name, value] of want) {
    if (HOP_BY_HOP.has(name) || named.has(name) || PROXY_SET.has(name)) continue;
    const up = have.get(name);
    if (up !== value) diffs.push(`header ${name}: upstream ${JSON.stringify(up)} != sent ${JSON.stringify(value)}`);
  }
  for (const name of have.keys()) {
    if (!want.has(name) && !HOP_BY_HOP.has(name) && !PROXY_SET.has(name)) diffs.push(`header ${name} added`);
  }
  // RFC 9112 §3.2.2: a proxy forwarding an absolute-form request generates Host from its authority.
  const host = verdict.authority ?? want.get('host');
  if (host !== undefined && have.get('host') !== host) diffs.push(`host ${JSON.stringify(have.get('host'))} != ${JSON.stringify(host)}${verdict.authority !== undefined ? ' (the absolute-form authority)' : ''}`);
  // A list field: empty elements carry nothing (RFC 9110 §5.6.1), so they are compared without them.
  const hops = (v: string | undefined): string => (v ?? '').split(',').map((h) => h.trim()).filter(Boolean).join(', ');
  const xff = hops(want.get('x-forwarded-for'));
  if (hops(have.get('x-forwarded-for')) !== (xff ? `${xff}, 127.0.0.1` : '127.0.0.1')) diffs.push(`x-forwarded-for ${JSON.stringify(have.get('x-forwarded-for'))}`);
  return diffs;
}

const marker = (m: RefMessage): string | undefined => m.headers.find(([n]) => n.toLowerCase() === 'x-fuzz-req')?.[1];

/** Runs `c` against `target` and judges it. Never throws for a sidecar misbehaviour: it reports. */
export async function runCase(target: FuzzTarget, c: FuzzCase): Promise<CaseResult> {
  const ref = parseStream(c.bytes, FUZZ_REF_LIMITS);
  const findings: Finding[] = [];
  const notes: string[] = [];
  const fail = (kind: Finding['kind'], detail: string): void => void findings.push({ kind, detail });

  // What the reference says is due: an answer per message up to and including the first refusal.
  // A head whose body has not fully arrived is judged too: a proxy refuses (or answers) on the head.
  const judged = ref.end.kind === 'incomplete' && ref.end.head ? [...ref.messages, ref.end.head] : ref.messages;
  const verdicts: Verdict[] = [];
  for (const m of judged) {
    const v = judgeRequest(m, target.direction);
    verdicts.push(v);
    if (v.kind === 'refuse' || (v.kind === 'forward' && v.upgrade)) break;
  }
  const lastVerdict = verdicts[verdicts.length - 1];
  const partialForward = verdicts.length > ref.messages.length && lastVerdict?.kind === 'forward';
  if (partialForward) verdicts.pop();
  const refusedAt = lastVerdict?.kind === 'refuse' ? verdicts.length - 1 : ref.end.kind === 'reject' && verdicts.length === ref.messages.length ? verdicts.length : -1;
  const stopsEarly = refusedAt >= 0 || (lastVerdict?.kind === 'forward' && lastVerdict.upgrade && !partialForward);
  const due = refusedAt >= 0 ? refusedAt + 1 : verdicts.length;
  const settled = stopsEarly || ref.end.kind !== 'incomplete' || verdicts.length > ref.messages.length;
  const methods = judged.map((m) => m.method);
  const nearLimit = judged.some((m) => m.nearHeaderLimit);

  const upBefore = target.upstream.received.length;
  const connBytes = new Map(target.upstream.conns.map((conn) => [conn, conn.bytes.length]));
  const bytesBefore = target.upstream.totalBytes;
  const connsBefore = target.upstream.conns.length;
  const res = await exchange(target.proxy.port, c, methods, due, stopsEarly, settled ? HANG_BOUND_MS : Math.max(INCOMPLETE_WAIT_MS, due > 0 ? HANG_BOUND_MS : 0));
  await settleUpstream(target.upstream);
  const got = target.upstream.received.slice(upBefore);
  const statuses = res.responses.map((r) => r.status);

  if (res.garbage !== undefined) fail('mismatch', `unreadable response bytes ${JSON.stringify(res.garbage)}`);
  if (res.timedOut && res.responses.length < due && (settled || due > 0)) {
    fail('hang', `${res.responses.length} of ${due} answers, connection still open after ${HANG_BOUND_MS} ms`);
  }

  // Each upstream message must be the forward of exactly one accepted client request.
  const unmatched = new Set<UpstreamMessage>(got);
  for (let i = 0; i < verdicts.length && i < res.responses.length + 1; i++) {
    const v = verdicts[i]!;
    const m = judged[i]!;
    const r = res.responses[i];
    if (v.kind === 'forward') {
      const up = [...unmatched].find((u) => marker(u.msg) === marker(m) && u.msg.method === m.method) ?? [...unmatched].find((u) => u.msg.method === m.method && u.msg.body === m.body);
      if (up) unmatched.delete(up);
      if (!r) {
        // Not a hang (reported above): the sidecar closed the connection without this answer.
        // After a near-limit request the sidecar refused with 431 (tolerated below), nothing more is due.
        const tolerated = nearLimit && res.responses.some((x) => x.upstream === undefined && x.status === 431);
        if (res.closed && i < due && !tolerated) fail('lost-response', `request ${i} ${up ? 'reached the upstream' : 'was accepted'} but the connection closed before its answer (got ${statuses.join(',') || 'none'})`);
        continue;
      }
      if (r.upstream === undefined) {
        if (!(nearLimit && r.status === 431)) fail('refused-valid', `request ${i} answered ${r.status} by the sidecar; reference forwards it as ${v.path}`);
        continue;
      }
      if (!up) {
        fail('mismatch', `request ${i} answered by the upstream but no matching upstream request`);
        continue;
      }
      const diffs = compareForwarded(m, up.msg, v);
      if (diffs.length) fail('mismatch', `request ${i}: ${diffs.join('; ')}`);
    } else if (r) {
      if (r.upstream !== undefined) fail('smuggled', `request ${i} (${v.why}) was forwarded; reference says ${v.kind} ${v.status}`);
      else if (r.status !== v.status) {
        // A near-limit head may be refused 431 whatever else the reference would answer.
        if (v.kind === 'answer' && !(nearLimit && r.status === 431)) fail('answered-wrong', `request ${i} answered ${r.status}, reference ${v.status} (${v.why})`);
        else notes.push(`request ${i}: refused ${r.status}, reference ${v.status} (${v.why})`);
      }
    }
  }
  if (refusedAt >= 0) {
    const responses = [...res.responses];
    const first = responses[refusedAt];
    // A head the proxy answers itself (OPTIONS * → 404, Expect → 417) may be answered before its
    // body turns out malformed; the refusal then follows.
    if (first && first.upstream === undefined && (first.status === 404 || first.status === 417) && (responses[refusedAt + 1]?.status ?? 0) >= 400) responses.splice(refusedAt, 1);
    const r = responses[refusedAt];
    const why = refusedAt < verdicts.length ? (verdicts[refusedAt] as { why: string }).why : (ref.end as { why: string }).why;
    if (r?.upstream !== undefined) fail('smuggled', `request ${refusedAt} (${why}) was forwarded`);
    else if (r && r.status < 400) fail('smuggled', `request ${refusedAt} (${why}) answered ${r.status}`);
    if (responses.length > refusedAt + 1) fail('kept-open', `${responses.length - refusedAt - 1} more answer(s) after refusing request ${refusedAt}`);
    if (r && !res.closed) fail('kept-open', `connection open after refusing request ${refusedAt} (${why})`);
    if (!r && !res.closed && refusedAt === responses.length) fail('hang', `no answer to request ${refusedAt} (${why}), connection open`);
  } else if (res.responses.length > due && !(ref.end.kind === 'incomplete' && earlyRefusal(res, due)) && !(nearLimit && res.responses[due]?.status === 431)) {
    fail('smuggled', `${res.responses.length} answers for ${due} requests: ${statuses.join(',')}`);
  }
  for (const u of unmatched) fail('smuggled', `upstream framed a request the reference did not accept: ${u.msg.method} ${u.msg.target} (marker ${marker(u.msg)})`);
  for (const conn of target.upstream.conns.slice(0)) {
    if (conn.unframed && !conn.closed) continue;
    if (conn.unframed) {
      fail('mismatch', `upstream could not frame what the sidecar sent: ${conn.unframed}`);
      conn.unframed = undefined;
    }
  }

  // A refused request whose bytes arrived with its head in one write: not one byte goes upstream.
  if (refusedAt >= 0 && refusedAt === ref.messages.length && ref.end.kind === 'reject' && verdicts.every((v) => v.kind !== 'forward')) {
    if (oneWriteFrom(c, ref.end.start) && target.upstream.totalBytes !== bytesBefore) {
      fail('leaked-bytes', `${target.upstream.totalBytes - bytesBefore} bytes reached the upstream (${target.upstream.conns.length - connsBefore} new connections) for a refused request (${ref.end.why})`);
    }
  }
  // Partial requests left on an upstream connection must not stay there as if they could complete.
  for (const conn of target.upstream.pendingOpen()) {
    if (connBytes.get(conn) === conn.bytes.length) continue; // untouched by this case
    if (settled && !stopsEarly && partialBytes(conn) > 0) fail('mismatch', `upstream connection ${conn.id} holds ${partialBytes(conn)} bytes of an unfinished request`);
  }
  const known = findings.length ? KNOWN_ISSUES.find((k) => k.matches(judged, verdicts, ref, c.bytes) && findings.every((f) => !k.kinds || k.kinds.includes(f.kind))) : undefined;
  if (known) return { findings: [], known: known.id, notes, statuses, ref };
  return { findings, notes, statuses, ref };
}

/**
 * After the due answers, one refusal and a close: what llhttp does when the bytes of an unfinished
 * request already cannot be a request (the reference waits for the line's end), or a 408.
 */
function earlyRefusal(res: ClientResult, due: number): boolean {
  return res.responses.length === due + 1 && res.responses[due]!.upstream === undefined && res.responses[due]!.status >= 400 && res.closed;
}

/** Whether every byte from `offset` on was sent in the same write. */
function oneWriteFrom(c: FuzzCase, offset: number): boolean {
  let start = 0;
  for (const w of c.writes) {
    if (offset < start + w.length) return start + w.length === c.bytes.length;
    start += w.length;
  }
  return true;
}

/** Waits until the upstream has been quiet for a moment and no open connection holds half a request. */
async function settleUpstream(up: RawUpstream): Promise<void> {
  const deadline = Date.now() + 600;
  let last = -1;
  while (Date.now() < deadline) {
    const now = up.totalBytes;
    if (now === last && up.pendingOpen().length === 0) return;
    last = now;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
