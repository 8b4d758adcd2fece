/**
 * The fuzzer's generator: HTTP/1.1 request byte streams, deterministic from a seed.
 *
 * A case starts from one to three valid requests (methods, origin- and absolute-form targets with
 * percent-encoding, dot segments, repeated slashes and queries; Host, Content-Length or chunked
 * bodies with extensions and trailers, Connection, Upgrade, Expect), applies structured mutations
 * (smuggling and framing tricks, header syntax, limits) to the model and byte-level mutations (flip,
 * insert, delete, duplicate) to the bytes, then cuts the bytes into writes at random boundaries,
 * with small delays between them. `generateCase(seed, index)` is a pure function: a printed
 * `seed`/`index` pair replays the exact case.
 */

/** mulberry32: small, fast, good enough to spread cases; deterministic across platforms. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }
}

/** The per-case seed: the run seed and the case index, mixed (so case i replays alone). */
export function caseSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

export interface FuzzLimits {
  readonly maxHeaderBytes: number;
  readonly maxHeaderCount: number;
}

export interface FuzzCase {
  readonly seed: number;
  readonly index: number;
  /** The whole stream, latin1. */
  readonly bytes: string;
  /** `bytes` cut into writes (concatenated they are `bytes`). */
  readonly writes: readonly string[];
  /** Delay before each write after the first, ms. */
  readonly gapMs: number;
  /** What was done, for the failure message. */
  readonly steps: readonly string[];
}

interface Chunk {
  size: string;
  ext: string;
  data: string;
  /** The CRLF after the data. */
  tail: string;
}

interface Req {
  method: string;
  target: string;
  version: string;
  headers: [string, string][];
  /** Separator between name and value (`: `). */
  body: { kind: 'none' } | { kind: 'length'; data: string } | { kind: 'chunked'; chunks: Chunk[]; last: string; trailers: [string, string][]; end: string };
  eol: string;
}

const METHODS = ['GET', 'GET', 'GET', 'POST', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH'];
const SEGMENTS = ['api', 'v1', 'users', 'a', 'b', 'admin', 'public', 'x.y', '~me', '..', '.', '', '%61dmin', '%2e%2e', '%2F', '%2f', '%5C', '%00', '%41', '%3a', 'caf%c3%a9', 'a;b=c', '..;x', '%', '%zz', 'a:b@c', '*'];
const QUERIES = ['', '', '', '?a=1', '?a=1&b=%2F', '?x=/../y', '?q=%zz', '?', '?a=b?c#d'];
const HOSTS = ['app', 'app.local', 'App.Local.', 'app:8080', '127.0.0.1', '[::1]:80', 'deny.local', 'a b', 'a/b', 'x@y'];
const TE_VARIANTS = ['chunked', 'Chunked', 'CHUNKED', ' chunked', 'chunked ', '\tchunked', 'chunked, identity', 'identity, chunked', 'gzip, chunked', 'gzip', 'identity', '\x0bchunked', '\xa0chunked', 'chunked;a=b', 'xchunked', 'chunke', '', 'chunked,', ',chunked', '"chunked"'];
const CL_VARIANTS = ['+5', '-1', '0x5', '5 5', '5,5', '05', '00000000000000005', '99999999999999999999', 'abc', '', ' 5', '5\t', '1e3'];
const CHUNK_SIZES = ['0x10', '+5', '-1', 'ffffffffffffffffffff', '0005', '5 ', ' 5', 'g', '', '5;', '5;a', '5;a=b', '5;a="q"', '5 ;a', '5;a=b c', 'A', 'a'];
const INTERESTING_BYTES = ['\r', '\n', '\0', ' ', '\t', ':', ',', ';', '\x0b', '\x0c', '\x7f', '\x80', '\xff', '"', '\\', '/', '%', '#', '?', '0', 'a', '\r\n', '\r\n\r\n'];
const NAMES = ['X-A', 'Accept', 'User-Agent', 'Cookie', 'Authorization', 'Content-Type', 'X-Forwarded-For', 'Keep-Alive', 'TE', 'Trailer', 'Proxy-Connection', 'X-Request-Id', 'Via', 'Set-Cookie', 'x-weft-target-port'];

function randomPath(r: Rng): string {
  const n = 1 + r.int(4);
  let p = '';
  for (let i = 0; i < n; i++) p += (r.chance(0.1) ? '//' : '/') + r.pick(SEGMENTS);
  if (r.chance(0.1)) p += '/';
  return p + r.pick(QUERIES);
}

function randomBody(r: Rng): string {
  const len = r.pick([0, 1, 5, 16, 100, 1000]);
  const alphabet = r.chance(0.2) ? 'GET / HTTP/1.1\r\nHost: smuggled\r\n\r\n0\r\n' : 'abcdefghijklmnopqrstuvwxyz0123456789';
  let s = '';
  for (let i = 0; i < len; i++) s += alphabet[(i + r.int(alphabet.length)) % alphabet.length];
  return s;
}

function baseRequest(r: Rng, marker: string): Req {
  const method = r.pick(METHODS);
  let target = randomPath(r);
  if (r.chance(0.1)) target = `http://${r.pick(HOSTS.slice(0, 5))}${target}`;
  if (r.chance(0.03)) target = '*';
  const headers: [string, string][] = [['Host', r.chance(0.9) ? r.pick(HOSTS.slice(0, 6)) : r.pick(HOSTS)], ['X-Fuzz-Req', marker]];
  for (let i = r.int(4); i > 0; i--) headers.push([r.pick(NAMES), r.pick(['v', 'a, b', 'caf\xe9', 'x=1; y=2', '', 'close', 'upgrade', '100-continue'])]);
  if (r.chance(0.1)) headers.push(['Connection', r.pick(['close', 'keep-alive', 'X-A', 'upgrade', 'close, upgrade'])]);
  if (r.chance(0.05)) headers.push(['Upgrade', r.pick(['websocket', 'h2c', 'foo/1'])]);
  if (r.chance(0.05)) headers.push(['Expect', r.pick(['100-continue', '100-Continue', 'foo'])]);
  let body: Req['body'] = { kind: 'none' };
  if (method !== 'GET' && method !== 'HEAD' ? r.chance(0.7) : r.chance(0.1)) {
    const data = randomBody(r);
    if (r.chance(0.5)) {
      body = { kind: 'length', data };
      headers.push(['Content-Length', String(data.length)]);
    } else {
      const chunks: Chunk[] = [];
      let rest = data;
      while (rest.length > 0) {
        const n = 1 + r.int(Math.min(rest.length, 300));
        chunks.push({ size: n.toString(16), ext: r.chance(0.1) ? r.pick([';a=b', ';x', ';q="v"']) : '', data: rest.slice(0, n), tail: '\r\n' });
        rest = rest.slice(n);
      }
      const trailers: [string, string][] = r.chance(0.15) ? [['X-Trailer', 'v']] : [];
      body = { kind: 'chunked', chunks, last: '0', trailers, end: '\r\n' };
      headers.push(['Transfer-Encoding', 'chunked']);
    }
  }
  return { method, target, version: r.chance(0.05) ? '1.0' : '1.1', headers, body, eol: '\r\n' };
}

function serialize(q: Req): string {
  let s = `${q.method} ${q.target} HTTP/${q.version}${q.eol}`;
  for (const [n, v] of q.headers) s += `${n}: ${v}${q.eol}`;
  s += q.eol;
  if (q.body.kind === 'length') s += q.body.data;
  else if (q.body.kind === 'chunked') {
    for (const c of q.body.chunks) s += `${c.size}${c.ext}\r\n${c.data}${c.tail}`;
    s += `${q.body.last}\r\n`;
    for (const [n, v] of q.body.trailers) s += `${n}: ${v}\r\n`;
    s += q.body.end;
  }
  return s;
}

const hIndex = (q: Req, name: string): number => q.headers.findIndex(([n]) => n.toLowerCase() === name);

/** Structured mutations of one request: each returns its name for the log. */
const MUTATIONS: readonly ((q: Req, r: Rng, lim: FuzzLimits) => string)[] = [
  (q, r) => {
    q.headers.push(['Content-Length', r.chance(0.5) ? String(q.body.kind === 'length' ? q.body.data.length : 0) : String(r.int(50))]);
    return 'extra Content-Length';
  },
  (q, r) => {
    q.headers.splice(r.int(q.headers.length + 1), 0, ['Transfer-Encoding', r.pick(TE_VARIANTS)]);
    return 'extra Transfer-Encoding';
  },
  (q, r) => {
    const i = hIndex(q, 'transfer-encoding');
    if (i < 0) return 'no TE to vary';
    const v = r.pick(TE_VARIANTS);
    q.headers[i]![1] = v;
    return `TE variant ${JSON.stringify(v)}`;
  },
  (q, r) => {
    const i = hIndex(q, 'content-length');
    if (i < 0) return 'no CL to vary';
    const v = r.pick(CL_VARIANTS);
    q.headers[i]![1] = v;
    return `CL variant ${JSON.stringify(v)}`;
  },
  (q, r) => {
    // A continuation line: the value runs on past a line break that starts with whitespace.
    q.headers[r.int(q.headers.length)]![1] += `\r\n${r.pick([' ', '\t'])}folded`;
    return 'obs-fold';
  },
  (q) => {
    q.eol = '\n';
    return 'bare LF line endings';
  },
  (q, r) => {
    const i = r.int(q.headers.length);
    const h = q.headers[i]!;
    const c = r.pick(['\0', '\x01', '\x7f', '\r', '\n', '\x0b', '\x1f', '\x80', '\xff']);
    if (r.chance(0.5)) h[1] = h[1].slice(0, 1) + c + h[1].slice(1);
    else h[0] = h[0].slice(0, 1) + c + h[0].slice(1);
    return `control byte ${JSON.stringify(c)} in header ${i}`;
  },
  (q, r) => {
    const i = r.int(q.headers.length);
    q.headers[i]![0] += r.pick([' ', '\t']);
    return 'whitespace before colon';
  },
  (q, r, lim) => {
    const long = 'v'.repeat(r.chance(0.5) ? lim.maxHeaderBytes + 100 : lim.maxHeaderBytes - 200 - r.int(500));
    if (r.chance(0.5)) q.target = `/${long}`;
    else q.headers.push(['X-Long', long]);
    return 'long line';
  },
  (q, r, lim) => {
    const n = lim.maxHeaderCount + r.pick([-3, -1, 0, 1, 2, 50]);
    for (let i = q.headers.length; i < n; i++) q.headers.push([`X-H${i}`, 'v']);
    return `header count ${n}`;
  },
  (q, r) => {
    if (q.body.kind !== 'chunked' || q.body.chunks.length === 0) return 'no chunk to vary';
    const c = r.pick(q.body.chunks);
    const v = r.pick(CHUNK_SIZES);
    c.size = v.replace(/5/g, c.data.length.toString(16));
    return `chunk size ${JSON.stringify(c.size)}`;
  },
  (q, r) => {
    if (q.body.kind !== 'chunked') return 'not chunked';
    if (r.chance(0.5)) q.body.end = '';
    else if (q.body.chunks.length) r.pick(q.body.chunks).tail = r.pick(['', '\n', '\r', 'XX\r\n']);
    else q.body.last = r.pick(['00', '000;ext', '0 ', '']);
    return 'chunk terminator';
  },
  (q, r) => {
    q.version = r.pick(['1.0', '1.2', '2.0', '0.9', '11', '1.1 ']);
    return `version ${q.version}`;
  },
  (q, r) => {
    const i = hIndex(q, 'host');
    if (r.chance(0.5) && i >= 0) q.headers.splice(i, 1);
    else q.headers.push(['Host', r.pick(HOSTS)]);
    return 'host removed or repeated';
  },
  (q, r) => {
    q.method = r.pick(['get', 'GeT', 'FOO', 'CONNECT', 'PRI', 'M-SEARCH', 'PROPFIND', 'G ET']);
    return `method ${q.method}`;
  },
  (q, r) => {
    q.target = r.pick(['http://app/x', 'http://user@app/', 'https://app', 'ftp://app/x', 'app/x', '//x', '/a b', '/a\x7f', '/\xe9', '/a?b#c', '*', '/%2e%2e/%2e%2e/etc/passwd', '/a/..;/b', '/a/%2e%2e;/b']);
    return `target ${JSON.stringify(q.target)}`;
  },
  (q, r) => {
    q.headers.push(['Connection', 'upgrade'], ['Upgrade', r.pick(['websocket', 'h2c'])]);
    return 'upgrade';
  },
];

/** Byte-level mutations of the whole stream. */
function mutateBytes(s: string, r: Rng): [string, string] {
  if (s.length === 0) return [s, 'empty'];
  const at = r.int(s.length);
  switch (r.int(5)) {
    case 0:
      return [s.slice(0, at) + String.fromCharCode(s.charCodeAt(at) ^ (1 << r.int(8))) + s.slice(at + 1), `flip bit at ${at}`];
    case 1: {
      const b = r.pick(INTERESTING_BYTES);
      return [s.slice(0, at) + b + s.slice(at), `insert ${JSON.stringify(b)} at ${at}`];
    }
    case 2:
      return [s.slice(0, at) + s.slice(at + 1 + r.int(3)), `delete at ${at}`];
    case 3: {
      const len = 1 + r.int(20);
      return [s.slice(0, at + len) + s.slice(at, at + len) + s.slice(at + len), `duplicate ${len} at ${at}`];
    }
    default:
      return [s.slice(0, at) + String.fromCharCode(r.int(256)) + s.slice(at + 1), `replace at ${at}`];
  }
}

/** The case `index` of run `seed`. Pure: the same pair always yields the same bytes and writes. */
export function generateCase(seed: number, index: number, limits: FuzzLimits): FuzzCase {
  const s = caseSeed(seed, index);
  const r = new Rng(s);
  const steps: string[] = [];
  const count = r.chance(0.7) ? 1 : 1 + r.int(3);
  let bytes = '';
  for (let i = 0; i < count; i++) {
    const q = baseRequest(r, `${index}.${i}`);
    // About a third of requests stay valid; the rest get one to three structured mutations.
    const n = r.chance(0.35) ? 0 : 1 + r.int(3);
    for (let k = 0; k < n; k++) steps.push(`req ${i}: ${r.pick(MUTATIONS)(q, r, limits)}`);
    bytes += serialize(q);
  }
  if (r.chance(0.25)) {
    const n = 1 + r.int(3);
    for (let k = 0; k < n; k++) {
      const [next, step] = mutateBytes(bytes, r);
      bytes = next;
      steps.push(step);
    }
  }
  const writes: string[] = [];
  let gapMs = 0;
  if (r.chance(0.3)) {
    const cuts = [...new Set(Array.from({ length: 1 + r.int(4) }, () => 1 + r.int(Math.max(1, bytes.length - 1))))].sort((a, b) => a - b);
    let from = 0;
    for (const c of cuts) {
      if (c > from && c < bytes.length) writes.push(bytes.slice(from, c));
      from = Math.max(from, c);
    }
    writes.push(bytes.slice(from));
    gapMs = r.pick([0, 1, 5, 20]);
    steps.push(`split at ${cuts.join(',')} with ${gapMs} ms gaps`);
  } else {
    writes.push(bytes);
  }
  return { seed, index, bytes, writes, gapMs, steps };
}
